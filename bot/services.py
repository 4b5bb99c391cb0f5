"""The service catalog: the default Dropbox service (from configuration) and custom OAuth2 ones."""

from __future__ import annotations

from urllib.parse import urlsplit

from bot.config import Settings
from bot.context import ServiceInfo
from bot.errors import Conflict, UnknownRecord, UsageError
from bot.providers.oauth2 import OAuth2Service
from bot.sealing import open_client_secret, seal_client_secret
from bot.secret import Secret
from bot.vault import Vault
from storage.connections import ServiceRecords
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


class ServiceCatalog:
    def __init__(
        self,
        settings: Settings,
        records: ServiceRecords,
        vault: Vault,
        *,
        file_kinds: frozenset[str] = frozenset(),
    ) -> None:
        self._settings = settings
        self._records = records
        self._vault = vault
        self._file_kinds = file_kinds

    def _info(self, name: str, kind: str, scopes: tuple[str, ...]) -> ServiceInfo:
        return ServiceInfo(name, kind, scopes, kind != "custom", kind in self._file_kinds)

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
        record = await self._records.get(name)
        if record is None:
            raise UnknownRecord("service", name)
        secret = open_client_secret(self._vault, record)
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
        found = [self._info(DROPBOX, "dropbox", DROPBOX_SCOPES)]
        found += [self._info(r.name, "custom", r.scopes) for r in await self._records.all()]
        return found

    async def info(self, name: str) -> ServiceInfo | None:
        if name.lower() == DROPBOX:
            return self._info(DROPBOX, "dropbox", DROPBOX_SCOPES)
        record = await self._records.get(name)
        return self._info(record.name, "custom", record.scopes) if record else None

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
        record = ServiceRecord(
            name=name,
            authorize_url=options["authorize_url"],
            token_url=options["token_url"],
            client_id=options["client_id"],
            client_secret_sealed=seal_client_secret(self._vault, name, options["client_secret"]),
            refresh_url=options.get("refresh_url"),
            revoke_url=options.get("revoke_url"),
            userinfo_url=options.get("userinfo_url"),
            scopes=scopes,
            param_type=param_type,
            scope_delimiter=_DELIMITERS[delimiter_name],
            created_by=created_by,
        )
        await self._records.add(record)
        return self._info(name, "custom", scopes)

    async def remove_custom(self, name: str) -> bool:
        return await self._records.remove(name)
