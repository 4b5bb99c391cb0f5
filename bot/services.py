"""The service catalog: Dropbox (from configuration), the default services of
:mod:`bot.catalogue` (CONTRACT §10) and custom OAuth2 services (CONTRACT §5).

A default service is usable once its OAuth client is known: ``SERVICE_<NAME>_CLIENT_ID`` /
``_SECRET`` (configuration wins) or ``/connection service configure NAME``, stored in the
``services`` collection with the secret sealed like a custom service's. A custom service stored
under a name the catalogue later took keeps working, and hides that default service.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

from bot.catalogue import CatalogueEntry, client_variables
from bot.config import Settings
from bot.context import ServiceInfo
from bot.errors import Conflict, UnknownRecord, UsageError
from bot.providers.oauth2 import (
    CLIENT_AUTH_METHODS,
    RESERVED_AUTHORIZE_PARAMS,
    SCOPE_DELIMITERS,
    OAuth2Service,
)
from bot.sealing import open_client_secret, seal_client_secret
from bot.secret import Secret
from bot.vault import Vault
from storage.connections import ServiceRecords
from storage.records import ServiceRecord

__all__ = ["DROPBOX", "DROPBOX_SCOPES", "ServiceCatalog", "catalogue_service", "how_to_enable"]

DROPBOX = "dropbox"
DROPBOX_SCOPES = (
    "account_info.read",
    "files.metadata.read",
    "files.content.write",
    "files.content.read",
    "sharing.write",
    "sharing.read",
)
_REQUIRED = ("authorize_url", "token_url", "client_id", "client_secret")
_URLS = ("authorize_url", "token_url", "refresh_url", "revoke_url", "userinfo_url")


def catalogue_service(found: CatalogueEntry, client_id: str, secret: Secret) -> OAuth2Service:
    """The default service ``found`` with the organisation's OAuth client."""
    return OAuth2Service(
        name=found.name,
        kind=found.kind,
        authorize_url=found.authorize_url,
        token_url=found.token_url,
        revoke_url=found.revoke_url.replace("{client_id}", client_id) if found.revoke_url else None,
        userinfo_url=found.userinfo_url,
        api_url=found.api_url,
        client_id=client_id,
        client_secret=secret,
        param_type=found.param_type,
        scope_delimiter=found.scope_delimiter,
        client_auth=found.client_auth,
        extra_authorize_params=dict(found.authorize_params),
        default_scopes=found.default_scopes,
        account_fields=found.account,
        granted_scope_delimiter=found.granted_scope_delimiter,
        regional_servers=found.regional_servers,
    )


def how_to_enable(name: str) -> str:
    """What enables default service ``name`` (CONTRACT §3, §5)."""
    id_var, _ = client_variables(name)
    return f"set {id_var} / _SECRET or run `service configure {name} client_id=… client_secret=…`"


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

    def _entry(self, name: str) -> CatalogueEntry | None:
        """The default service ``name`` (any case), or ``None``."""
        return self._settings.catalogue.get(name.lower())

    # -- OAuth services ----------------------------------------------------------------------

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
        key = name.lower()
        if key == DROPBOX:
            return self.dropbox()
        record = await self._records.get(key)
        if record is not None and not record.default:
            return self._custom(record)
        found = self._entry(key)
        if found is None:
            raise UnknownRecord("service", name)
        client = self._client(found, record)
        if client is None:
            raise Conflict(
                f"The default service `{key}` is not configured yet: an admin can"
                f" {how_to_enable(key)}."
            )
        return catalogue_service(found, *client)

    def _client(
        self, found: CatalogueEntry, record: ServiceRecord | None
    ) -> tuple[str, Secret] | None:
        """The OAuth client of a default service: configuration first, then the store."""
        configured = self._settings.service_clients.get(found.name)
        if configured is not None:
            return configured.client_id, configured.client_secret
        if record is not None:
            return record.client_id, Secret(open_client_secret(self._vault, record))
        return None

    def _custom(self, record: ServiceRecord) -> OAuth2Service:
        return OAuth2Service(
            name=record.name,
            kind="custom",
            authorize_url=record.authorize_url,
            token_url=record.token_url,
            refresh_url=record.refresh_url,
            revoke_url=record.revoke_url,
            userinfo_url=record.userinfo_url,
            client_id=record.client_id,
            client_secret=Secret(open_client_secret(self._vault, record)),
            scopes=record.scopes,
            param_type=record.param_type,
            scope_delimiter=record.scope_delimiter,
            client_auth=record.client_auth,
            extra_authorize_params=dict(record.authorize_params),
        )

    # -- what `services` shows -----------------------------------------------------------------

    def _info(self, name: str, kind: str, scopes: tuple[str, ...]) -> ServiceInfo:
        return ServiceInfo(name, kind, scopes, kind != "custom", kind in self._file_kinds)

    def _dropbox_info(self) -> ServiceInfo:
        info = self._info(DROPBOX, "dropbox", DROPBOX_SCOPES)
        if self._settings.dropbox_app_key:
            return info
        return replace(info, missing="set DROPBOX_APP_KEY / DROPBOX_APP_SECRET")

    def _entry_info(self, found: CatalogueEntry, configured: bool) -> ServiceInfo:
        ready = configured or found.name in self._settings.service_clients
        return ServiceInfo(
            name=found.name,
            kind=found.kind,
            scopes=(),  # any scope the provider offers
            default=True,
            receives_files=found.kind in self._file_kinds,
            default_scopes=found.default_scopes,
            missing="" if ready else how_to_enable(found.name),
            note=found.note,
        )

    async def all(self) -> list[ServiceInfo]:
        custom = await self._records.all()
        taken = {record.key for record in custom}
        configured = await self._records.configured_defaults()
        found = [self._dropbox_info()]
        found += [
            self._entry_info(e, e.name in configured)
            for e in self._settings.catalogue.values()
            if e.name not in taken
        ]
        found += [self._info(r.name, "custom", r.scopes) for r in custom]
        return found

    async def info(self, name: str) -> ServiceInfo | None:
        key = name.lower()
        if key == DROPBOX:
            return self._dropbox_info()
        record = await self._records.get(key)
        if record is not None and not record.default:
            return self._info(record.name, "custom", record.scopes)
        found = self._entry(key)
        return self._entry_info(found, record is not None) if found is not None else None

    # -- changes -------------------------------------------------------------------------------

    async def configure_default(
        self, name: str, options: dict[str, str], configured_by: str
    ) -> ServiceInfo:
        """Enable default service ``name`` with the organisation's OAuth client (sealed)."""
        key = name.lower()
        if key == DROPBOX:
            raise Conflict(
                "`dropbox` takes its app from DROPBOX_APP_KEY / DROPBOX_APP_SECRET;"
                " ask the bot's operator."
            )
        record = await self._records.get(key)
        if record is not None and not record.default:
            raise Conflict(
                f"`{record.name}` is a custom service here; `service remove {record.name}`"
                " first to use the default service of that name."
            )
        found = self._entry(key)
        if found is None:
            raise UsageError(
                f"There is no default service `{name}`. The default services:"
                f" {', '.join(self._settings.catalogue)}."
            )
        if key in self._settings.service_clients:
            id_var, secret_var = client_variables(key)
            raise Conflict(f"`{key}` is configured by {id_var} / {secret_var}; change it there.")
        missing = [k for k in ("client_id", "client_secret") if not options.get(k)]
        if missing:
            raise UsageError(f"`service configure` needs {', '.join(f'{m}=' for m in missing)}.")
        sealed = seal_client_secret(self._vault, key, options["client_secret"])
        if not await self._records.configure_default(
            key, options["client_id"], sealed, configured_by
        ):
            raise Conflict(f"`{key}` was added as a custom service meanwhile; nothing changed.")
        return self._entry_info(found, True)

    async def add_custom(self, name: str, options: dict[str, str], created_by: str) -> ServiceInfo:
        if name.lower() == DROPBOX:
            raise Conflict("`dropbox` is a default service; choose another name.")
        if self._entry(name) is not None:
            raise Conflict(
                f"`{name.lower()}` is a default service: enable it with"
                f" `service configure {name.lower()} client_id=… client_secret=…`,"
                " or choose another name."
            )
        if not name.replace("_", "").replace("-", "").isalnum():
            raise UsageError("A service name uses letters, digits, `-` and `_` only.")
        record = _custom_record(name, options, created_by, self._vault)
        await self._records.add(record)
        return self._info(name, "custom", record.scopes)

    async def remove_custom(self, name: str) -> bool:
        return await self._records.remove(name)


def _custom_record(
    name: str, options: Mapping[str, str], created_by: str, vault: Vault
) -> ServiceRecord:
    """A custom service from ``service add`` options (CONTRACT §5); every bad value refused."""
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
    delimiter_name = options.get("scope_delimiter", "space").lower()  # RFC 6749 §3.3
    if delimiter_name not in SCOPE_DELIMITERS:
        raise UsageError("scope_delimiter must be space, comma or plus.")
    client_auth = options.get("client_auth", "basic").lower()
    if client_auth not in CLIENT_AUTH_METHODS:
        raise UsageError("client_auth must be basic or post.")
    return ServiceRecord(
        name=name,
        authorize_url=options["authorize_url"],
        token_url=options["token_url"],
        client_id=options["client_id"],
        client_secret_sealed=seal_client_secret(vault, name, options["client_secret"]),
        refresh_url=options.get("refresh_url"),
        revoke_url=options.get("revoke_url"),
        userinfo_url=options.get("userinfo_url"),
        scopes=tuple(s.strip() for s in options.get("scopes", "").split(",") if s.strip()),
        param_type=param_type,
        scope_delimiter=SCOPE_DELIMITERS[delimiter_name],
        authorize_params=_authorize_params(options.get("authorize_params", "")),
        client_auth=client_auth,
        created_by=created_by,
    )


def _authorize_params(raw: str) -> tuple[tuple[str, str], ...]:
    """``authorize_params=k=v&k2=v2``: extra query parameters of the authorize request."""
    if not raw.strip():
        return ()
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise UsageError(
            "authorize_params must be k=v pairs joined by &,"
            " e.g. authorize_params=prompt=consent&access_type=offline."
        ) from None
    names = [key for key, _ in pairs]
    if not all(names):
        raise UsageError("authorize_params has a parameter without a name.")
    reserved = sorted(set(names) & RESERVED_AUTHORIZE_PARAMS)
    if reserved:
        raise UsageError(f"authorize_params cannot set {', '.join(reserved)}: the bot sets those.")
    twice = sorted({key for key in names if names.count(key) > 1})
    if twice:
        raise UsageError(f"authorize_params names {', '.join(twice)} more than once.")
    return tuple(pairs)
