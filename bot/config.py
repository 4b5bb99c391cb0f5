"""Configuration: read once, from an injected mapping, into a frozen :class:`Settings`.

Nothing else in the code base reads ``os.environ``. :func:`load_environment` merges ``.env`` (via
python-dotenv) under the real environment, and :func:`load_settings` validates every variable,
collecting *all* problems into one :class:`~bot.errors.ConfigError` so an operator fixes them in
one go. Secret values are wrapped in :class:`~bot.secret.Secret` and never appear in messages.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from bot.catalogue import CATALOGUE, CatalogueEntry, client_variables
from bot.cliq.messages import CliqFunction
from bot.errors import ConfigError
from bot.secret import Secret

T = TypeVar("T")

_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.-]+$")
_SERVICE_CLIENT_RE = re.compile(r"SERVICE_([A-Z0-9_]+?)_CLIENT_(?:ID|SECRET)")


@dataclass(frozen=True)
class ServiceClient:
    """The OAuth client of a default service (``SERVICE_<NAME>_CLIENT_ID`` / ``_SECRET``)."""

    client_id: str
    client_secret: Secret


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None
    data_dir: Path = Path("data")
    mongodb_uri: Secret | None = None
    mongodb_db: str = "cliqbot"
    encryption_keys: tuple[Secret, ...] = ()
    webhook_secret: Secret | None = None
    cliq_public_key: str | None = None
    admins: frozenset[str] = frozenset()
    cliq_api_base: str = "https://cliq.zoho.com/api/v2"
    cliq_bot_name: str | None = None
    cliq_webhook_token: Secret | None = None
    command_name: str = "connection"
    #: ``BOT_PLUGINS``: importable module names, each with a ``router`` (bot.plugins loads them).
    plugins: tuple[str, ...] = ()
    cliq_function_name: str = "cliqbot"
    cliq_function_owner: str | None = None
    dropbox_app_key: str | None = None
    dropbox_app_secret: Secret | None = None
    dropbox_authorize_url: str = "https://www.dropbox.com/oauth2/authorize"
    dropbox_api_url: str = "https://api.dropboxapi.com"
    dropbox_content_url: str = "https://content.dropboxapi.com"
    #: Default services of the catalogue (bot.catalogue) enabled by SERVICE_<NAME>_CLIENT_*.
    service_clients: Mapping[str, ServiceClient] = field(default_factory=dict)
    upload_folder: str = "/Cliq Uploads"
    max_file_bytes: int = 2 * 1024**3
    connect_link_ttl: int = 600
    verify_linking: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    # Not part of the contract's environment: knobs for tests, the demo and drills.
    kept_file_ttl: float = 7 * 24 * 3600.0
    upload_concurrency: int = 4
    #: Jobs of one account an upload slot claims at once, committed together (finish_batch).
    upload_batch: int = 100
    #: Seconds a due upload may wait on its attachment URL before the file is fetched into the
    #: store (URLs expire; a backlog must not lose acknowledged files).
    prefetch_after: float = 10.0
    #: Webhook deliveries handled at once; past it a delivery is answered 503 + Retry-After.
    max_events_in_flight: int = 256
    job_lease_seconds: float = 60.0
    worker_poll_seconds: float = 1.0
    #: How long a connections-page session lasts after signing in (CONTRACT §11).
    page_session_ttl: float = 8 * 3600.0
    #: The default services (bot.catalogue); tests point entries at local stand-ins.
    catalogue: Mapping[str, CatalogueEntry] = field(default_factory=lambda: CATALOGUE)

    def base_url(self, port: int | None = None) -> str:
        """``BOT_PUBLIC_URL`` if set, else ``http://{host}:{port}`` (the bound port when known)."""
        if self.public_url:
            return self.public_url.rstrip("/")
        return f"http://{self.host}:{port if port is not None else self.port}"

    @property
    def cliq_function(self) -> CliqFunction:
        """Where clicks on the bot's ``invoke.function`` buttons go (CONTRACT §4)."""
        return CliqFunction(self.cliq_function_name, self.cliq_function_owner)

    @property
    def has_inbound_auth(self) -> bool:
        return bool(self.webhook_secret) or bool(self.cliq_public_key)


def load_environment(
    environ: Mapping[str, str] | None = None, dotenv_path: Path | None = None
) -> dict[str, str]:
    """The environment with ``.env`` (from the working directory) underneath: real variables win."""
    env = dict(os.environ if environ is None else environ)
    path = dotenv_path if dotenv_path is not None else Path.cwd() / ".env"
    merged: dict[str, str] = {}
    if path.is_file():
        merged.update({k: v for k, v in dotenv_values(path).items() if v is not None})
    merged.update(env)
    return merged


class _Reader:
    """Reads typed values out of the mapping, remembering every problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def raw(self, name: str) -> str | None:
        value = self.env.get(name)
        if value is None:
            return None
        value = value.strip()
        return value or None

    def get(self, name: str, default: T, parse: Callable[[str], T], what: str) -> T:
        value = self.raw(name)
        if value is None:
            return default
        try:
            return parse(value)
        except ValueError as exc:
            detail = f" ({exc})" if str(exc) else ""
            self.problems.append(f"{name}: must be {what}{detail}")
            return default

    def secret(self, name: str) -> Secret | None:
        value = self.raw(name)
        return Secret(value) if value is not None else None

    def url(self, name: str, default: T) -> str | T:
        fallback: str | T = default
        return self.get(name, fallback, _url, "an http(s) URL")

    def lowered_set(self, name: str) -> frozenset[str]:
        """A comma-separated list, lowercased, without blanks."""
        return frozenset(p.strip().lower() for p in (self.raw(name) or "").split(",") if p.strip())


def _int_range(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise ValueError(f"got {value!r}") from None
        if not low <= number <= high:
            raise ValueError(f"got {number}")
        return number

    return parse


def _bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"got {value!r}")


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"got {value!r}")
    return value.rstrip("/")


def _choice(*choices: str, upper: bool = False) -> Callable[[str], str]:
    def parse(value: str) -> str:
        value = value.upper() if upper else value.lower()
        if value not in choices:
            raise ValueError(f"got {value!r}")
        return value

    return parse


def _name(value: str) -> str:
    if not _NAME_RE.match(value):
        raise ValueError(f"got {value!r}")
    return value


def _folder(value: str) -> str:
    if not value.startswith("/") or "\\" in value or any(ord(c) < 32 for c in value):
        raise ValueError("an absolute Dropbox path like /Cliq Uploads")
    value = value.rstrip("/")
    if not value:
        raise ValueError("not the root folder")
    return value


def _module_names(value: str) -> tuple[str, ...]:
    names = [part.strip() for part in value.split(",") if part.strip()]
    for name in names:
        if not all(part.isidentifier() for part in name.split(".")):
            raise ValueError(f"{name!r} is not a module name")
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"{', '.join(twice)} listed twice")
    return tuple(names)


def _mongodb_uri(value: str) -> str:
    if not value.startswith(("mongodb://", "mongodb+srv://")):
        raise ValueError("it does not start with mongodb:// or mongodb+srv://")
    return value


def _keys(value: str) -> tuple[Secret, ...]:
    from bot.vault import parse_keys

    parse_keys(value)  # raises ValueError naming the bad entry by position
    return tuple(Secret(part.strip()) for part in value.split(",") if part.strip())


def _read_public_key(reader: _Reader) -> str | None:
    pem = reader.raw("CLIQ_PUBLIC_KEY")
    path = reader.raw("CLIQ_PUBLIC_KEY_FILE")
    if pem and path:
        reader.problems.append("CLIQ_PUBLIC_KEY / CLIQ_PUBLIC_KEY_FILE: set only one of them")
        return None
    if path:
        try:
            pem = Path(path).read_text()
        except OSError as exc:
            reader.problems.append(f"CLIQ_PUBLIC_KEY_FILE: cannot read {path}: {exc.strerror}")
            return None
    if pem is None:
        return None
    pem = pem.replace("\\n", "\n")
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    name = "CLIQ_PUBLIC_KEY_FILE" if path else "CLIQ_PUBLIC_KEY"
    try:
        key = load_pem_public_key(pem.encode())
    except ValueError:
        reader.problems.append(f"{name}: not a PEM public key")
        return None
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

    if not isinstance(key, RSAPublicKey):
        reader.problems.append(f"{name}: must be an RSA public key")
        return None
    return pem


def _email(value: str) -> str:
    if not re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", value):
        raise ValueError
    return value


def _dropbox_app(reader: _Reader) -> tuple[str | None, Secret | None]:
    """The Dropbox app's key and secret: both or neither."""
    app_key = reader.raw("DROPBOX_APP_KEY")
    app_secret = reader.secret("DROPBOX_APP_SECRET")
    if bool(app_key) != bool(app_secret):
        reader.problems.append("DROPBOX_APP_KEY / DROPBOX_APP_SECRET: set both or neither")
    return app_key, app_secret


def _service_clients(reader: _Reader) -> dict[str, ServiceClient]:
    """``SERVICE_<NAME>_CLIENT_ID`` / ``_SECRET`` of the catalogue's default services: both or
    neither, and only for a name the catalogue has."""
    names = sorted({m.group(1) for key in reader.env if (m := _SERVICE_CLIENT_RE.fullmatch(key))})
    clients: dict[str, ServiceClient] = {}
    for upper in names:
        id_var, secret_var = client_variables(upper)
        client_id, secret = reader.raw(id_var), reader.secret(secret_var)
        if client_id is None and secret is None:
            continue
        if upper.lower() not in CATALOGUE:
            hint = (
                "Dropbox's client is DROPBOX_APP_KEY / DROPBOX_APP_SECRET"
                if upper == "DROPBOX"
                else f"the default services are {', '.join(CATALOGUE)}"
            )
            given = id_var if client_id is not None else secret_var
            reader.problems.append(f"{given}: no default service `{upper.lower()}` ({hint})")
        elif client_id is None or secret is None:
            reader.problems.append(f"{id_var} / {secret_var}: set both or neither")
        else:
            clients[upper.lower()] = ServiceClient(client_id, secret)
    return clients


def _operational(r: _Reader) -> dict[str, Any]:
    """Operational knobs beyond the contract (defaults suit production; drills shorten them)."""
    return {
        "kept_file_ttl": float(
            r.get("BOT_KEPT_FILE_TTL", 7 * 86400, _int_range(1, 365 * 86400), "seconds")
        ),
        "upload_concurrency": r.get("BOT_UPLOAD_CONCURRENCY", 4, _int_range(1, 64), "1 to 64"),
        "upload_batch": r.get("BOT_UPLOAD_BATCH", 100, _int_range(1, 1000), "1 to 1000"),
        "prefetch_after": float(
            r.get("BOT_PREFETCH_AFTER", 10, _int_range(1, 3600), "seconds from 1 to 3600")
        ),
        "max_events_in_flight": r.get(
            "BOT_MAX_EVENTS_IN_FLIGHT", 256, _int_range(1, 100_000), "1 to 100000"
        ),
        "job_lease_seconds": float(
            r.get("BOT_JOB_LEASE_SECONDS", 60, _int_range(2, 3600), "seconds from 2 to 3600")
        ),
    }


def load_settings(env: Mapping[str, str]) -> Settings:
    """Validate ``env`` into :class:`Settings`; raise :class:`ConfigError` listing every problem."""
    r = _Reader(env)
    port = r.get("BOT_PORT", 8080, _int_range(0, 65535), "a port number from 0 to 65535")
    uri = r.get("MONGODB_URI", None, _mongodb_uri, "a MongoDB URI")
    app_key, app_secret = _dropbox_app(r)
    settings = Settings(
        host=r.raw("BOT_HOST") or "127.0.0.1",
        port=port,
        public_url=r.url("BOT_PUBLIC_URL", None),
        data_dir=Path(r.raw("BOT_DATA_DIR") or "data"),
        mongodb_uri=Secret(uri) if uri else None,
        mongodb_db=r.get("MONGODB_DB", "cliqbot", _name, "a database name (letters, digits, _.-)"),
        encryption_keys=r.get(
            "BOT_ENCRYPTION_KEYS", (), _keys, "comma-separated base64url 32-byte keys"
        ),
        webhook_secret=r.secret("BOT_WEBHOOK_SECRET"),
        cliq_public_key=_read_public_key(r),
        admins=r.lowered_set("BOT_ADMINS"),
        cliq_api_base=r.url("CLIQ_API_BASE", Settings.cliq_api_base),
        cliq_bot_name=r.get("CLIQ_BOT_NAME", None, _name, "a bot unique name"),
        cliq_webhook_token=r.secret("CLIQ_WEBHOOK_TOKEN"),
        command_name=r.get("BOT_COMMAND_NAME", "connection", _name, "a command name"),
        plugins=r.get("BOT_PLUGINS", (), _module_names, "comma-separated module names"),
        cliq_function_name=r.get(
            "CLIQ_FUNCTION_NAME", "cliqbot", _name, "a Cliq function name (letters, digits, _.-)"
        ),
        cliq_function_owner=r.get("CLIQ_FUNCTION_OWNER", None, _email, "an email address"),
        dropbox_app_key=app_key,
        dropbox_app_secret=app_secret,
        dropbox_authorize_url=r.url("DROPBOX_AUTHORIZE_URL", Settings.dropbox_authorize_url),
        dropbox_api_url=r.url("DROPBOX_API_URL", Settings.dropbox_api_url),
        dropbox_content_url=r.url("DROPBOX_CONTENT_URL", Settings.dropbox_content_url),
        service_clients=_service_clients(r),
        upload_folder=r.get("BOT_UPLOAD_FOLDER", "/Cliq Uploads", _folder, "a folder"),
        max_file_bytes=r.get(
            "BOT_MAX_FILE_BYTES", 2 * 1024**3, _int_range(1, 2**41), "a positive byte count"
        ),
        connect_link_ttl=r.get(
            "BOT_CONNECT_LINK_TTL", 600, _int_range(30, 86400), "seconds from 30 to 86400"
        ),
        verify_linking=r.get("BOT_VERIFY_LINKING", False, _bool, "true or false"),
        log_level=r.get("BOT_LOG_LEVEL", "INFO", _choice(*_LOG_LEVELS, upper=True), "a level"),
        log_format=r.get("BOT_LOG_FORMAT", "text", _choice("text", "json"), "text or json"),
        **_operational(r),
    )
    if r.problems:
        raise ConfigError(r.problems)
    return settings


def serve_problems(settings: Settings) -> list[str]:
    """What stops ``serve`` beyond parsing: inbound events must be authenticated somehow, and
    every ``BOT_PLUGINS`` module must load."""
    problems = []
    if not settings.has_inbound_auth:
        problems.append(
            "BOT_WEBHOOK_SECRET / CLIQ_PUBLIC_KEY: set at least one, or inbound events"
            " cannot be authenticated"
        )
    from bot.plugins import plugin_problems  # imports the plugins' code: serve and check only

    problems += plugin_problems(settings.plugins)
    return problems
