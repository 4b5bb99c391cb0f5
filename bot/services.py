"""The service catalog: the default Dropbox service (from configuration) and custom OAuth2 ones."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.config import Settings
from bot.context import ServiceInfo
from bot.errors import Conflict, NotFound, UsageError
from bot.providers.oauth2 import OAuth2Service
from bot.secret import Secret
from bot.vault import Sealed, Vault
from storage.connections import Services
from storage.records import ServiceRecord

DROPBOX = "dropbox"
DROPBOX_SCOPES = (
    "account_info.read",
    "files.metadata.read",
    "files.content.write",
    "files.content.read",
    "sharing.write",
    "sharing.read",
)
_DELIMITERS = {"space": " ", "comma": ",", "plus": "+"}
_REQUIRED = ("authorize_url", "token_url", "client_id", "client_secret")
_URLS = ("authorize_url", "token_url", "refresh_url", "revoke_url", "userinfo_url")


def _secret_aad(name: str) -> str:
    return f"service:{name.lower()}:client_secret"


class ServiceCatalog:
    def __init__(self, settings: Settings, services: Services, vault: Vault) -> None:
        self._settings = settings
        self._services = services
        self._vault = vault

    def dropbox(self) -> OAuth2Service:
        s = self._settings
        if not s.dropbox_app_key or s.dropbox_app_secret is None:
            raise Conflict(
                "The Dropbox app is not configured (DROPBOX_APP_KEY / DROPBOX_APP_SECRET);"
                " ask the bot's operator."
            )
        return OAuth2Service(
            name=DROPBOX,
            kind="dropbox",
            authorize_url=s.dropbox_authorize_url,
            token_url=f"{s.dropbox_api_url}/oauth2/token",
            revoke_url=f"{s.dropbox_api_url}/2/auth/token/revoke",
            api_url=s.dropbox_api_url,
            client_id=s.dropbox_app_key,
            client_secret=s.dropbox_app_secret,
            scopes=DROPBOX_SCOPES,
            scope_delimiter=" ",
            extra_authorize_params={"token_access_type": "offline"},
        )

    async def oauth_service(self, name: str) -> OAuth2Service:
        if name.lower() == DROPBOX:
            return self.dropbox()
        record = await self._services.get(name)
        if record is None:
            raise NotFound(f"The service `{name}` no longer exists.")
        secret = self._vault.open(
            Sealed.from_doc(record.client_secret_sealed), aad=_secret_aad(record.name)
        )
        return OAuth2Service(
            name=record.name,
            kind="custom",
            authorize_url=record.authorize_url,
            token_url=record.token_url,
            refresh_url=record.refresh_url,
            revoke_url=record.revoke_url,
            userinfo_url=record.userinfo_url,
            client_id=record.client_id,
            client_secret=Secret(secret),
            scopes=record.scopes,
            param_type=record.param_type,
            scope_delimiter=record.scope_delimiter,
        )

    async def all(self) -> list[ServiceInfo]:
        found = [ServiceInfo(DROPBOX, "dropbox", DROPBOX_SCOPES, True)]
        found += [
            ServiceInfo(r.name, "custom", r.scopes, False) for r in await self._services.all()
        ]
        return found

    async def info(self, name: str) -> ServiceInfo | None:
        if name.lower() == DROPBOX:
            return ServiceInfo(DROPBOX, "dropbox", DROPBOX_SCOPES, True)
        record = await self._services.get(name)
        return ServiceInfo(record.name, "custom", record.scopes, False) if record else None

    async def add_custom(self, name: str, options: dict[str, str], created_by: str) -> ServiceInfo:
        if name.lower() == DROPBOX:
            raise Conflict("`dropbox` is a default service; choose another name.")
        if not name.replace("_", "").replace("-", "").isalnum():
            raise UsageError("A service name uses letters, digits, `-` and `_` only.")
        missing = [key for key in _REQUIRED if not options.get(key)]
        if missing:
            raise UsageError(f"`service add` needs {', '.join(f'{m}=' for m in missing)}.")
        for key in _URLS:
            if key in options:
                parts = urlsplit(options[key])
                if parts.scheme not in ("http", "https") or not parts.netloc:
                    raise UsageError(f"{key} must be an http(s) URL.")
        param_type = options.get("param_type", "header").lower()
        if param_type not in ("header", "query"):
            raise UsageError("param_type must be header or query.")
        delimiter_name = options.get("scope_delimiter", "comma").lower()
        if delimiter_name not in _DELIMITERS:
            raise UsageError("scope_delimiter must be space, comma or plus.")
        scopes = tuple(s.strip() for s in options.get("scopes", "").split(",") if s.strip())
        sealed = self._vault.seal(options["client_secret"], aad=_secret_aad(name))
        record = ServiceRecord(
            name=name,
            authorize_url=options["authorize_url"],
            token_url=options["token_url"],
            client_id=options["client_id"],
            client_secret_sealed=sealed.to_doc(),
            refresh_url=options.get("refresh_url"),
            revoke_url=options.get("revoke_url"),
            userinfo_url=options.get("userinfo_url"),
            scopes=scopes,
            param_type=param_type,
            scope_delimiter=_DELIMITERS[delimiter_name],
            created_by=created_by,
        )
        await self._services.add(record)
        return ServiceInfo(name, "custom", scopes, False)

    async def remove_custom(self, name: str) -> bool:
        return await self._services.remove(name)
