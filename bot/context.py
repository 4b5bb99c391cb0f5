"""What handlers depend on, as typed protocols, plus the context dataclass that carries them.

Part of the core: this module imports neither ``handlers/`` nor aiohttp nor pymongo. Handlers
reach everything that talks HTTP or to the store through these protocols; ``create_app`` wires
the implementations (``bot/`` services, ``storage/`` repositories) in. ``ctx.admin`` (the rules
of managing connections, :mod:`bot.admin`) is built from those parts; ``ctx.router`` is the
router tree the event is dispatched through, set by :func:`bot.router.dispatch`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Protocol, TypeAlias

from bot.admin import ConnectionAdmin
from bot.cliq.events import Attachment, CliqUser, Event
from bot.cliq.messages import Message
from bot.config import Settings
from bot.errors import NotAuthorized
from bot.invoke import DEFAULT_TIMEOUT, Invoker, InvokeResponse, Params
from storage.records import Authorization, Connection

if TYPE_CHECKING:
    from bot.router import Router


@dataclass(frozen=True)
class ServiceInfo:
    name: str
    kind: str
    scopes: tuple[str, ...]
    default: bool
    #: Files sent to the bot can land in this service (a destination exists for its kind;
    #: CONTRACT §5 ``publish``).
    receives_files: bool = False
    #: Asked for on every connect besides the connection's scopes (a default service's).
    default_scopes: tuple[str, ...] = ()
    #: What a default service still needs before it can be used; "" when it is ready.
    missing: str = ""
    note: str = ""  # e.g. "no revocation endpoint: disconnecting deletes the stored tokens"


class ServiceCatalog(Protocol):
    async def all(self) -> list[ServiceInfo]: ...
    async def info(self, name: str) -> ServiceInfo | None: ...
    async def add_custom(
        self, name: str, options: dict[str, str], created_by: str
    ) -> ServiceInfo: ...
    async def remove_custom(self, name: str) -> bool: ...
    async def configure_default(
        self, name: str, options: dict[str, str], configured_by: str
    ) -> ServiceInfo: ...


@dataclass(frozen=True)
class RevokeOutcome:
    had_authorization: bool
    provider_ok: bool


class Accounts(Protocol):
    """The OAuth side: connect links, revocation, the linking check."""

    async def connect_url(self, conn: Connection, user: CliqUser) -> str: ...
    async def revoke(self, conn: Connection, user_id: str, *, forget: bool) -> RevokeOutcome: ...
    async def verify_code(self, user: CliqUser, code: str) -> Message | None: ...


@dataclass(frozen=True)
class Intake:
    """What happened to one attachment, for the reply."""

    line: str
    needs_connect: bool = False


class Files(Protocol):
    """The file flow (CONTRACT §7)."""

    async def accept(
        self, event: Event, attachment: Attachment, conn: Connection, credential_user: str
    ) -> Intake: ...
    async def status_lines(self, user_id: str) -> list[str]: ...
    async def waiting_count(self, link: str) -> int: ...
    async def retry(self, user_id: str, job_id: str) -> str: ...
    async def cancel(self, user_id: str, job_id: str) -> str: ...


class ConnectionStore(Protocol):
    """Connections as the chat layer uses them (``storage.connections.Connections``)."""

    async def create(self, conn: Connection) -> None: ...
    async def get(self, link: str) -> Connection | None: ...
    async def require(self, link: str) -> Connection: ...
    async def update(self, link: str, changes: Mapping[str, Any]) -> Connection: ...
    async def publish(self, link: str) -> list[str]: ...
    async def published(self) -> Connection | None: ...
    async def owned_by(self, user_id: str) -> list[Connection]: ...
    async def not_owned_by(self, user_id: str) -> list[Connection]: ...
    async def by_links(self, links: Sequence[str]) -> list[Connection]: ...
    async def using_service(self, service: str) -> list[str]: ...
    async def delete(self, link: str) -> bool: ...


class AuthorizationStore(Protocol):
    """Authorizations as the chat layer reads them (``storage.authorizations``)."""

    async def get(self, link: str, user_id: str) -> Authorization | None: ...
    async def of_user(self, user_id: str) -> list[Authorization]: ...
    async def of_connection(self, link: str) -> list[Authorization]: ...
    async def count_connected(self, link: str) -> int: ...


class AuditStore(Protocol):
    async def record(
        self, actor_id: str, actor_email: str, action: str, target: str, **details: Any
    ) -> None: ...


class Notifier(Protocol):
    async def notify(self, user_ids: Sequence[str], message: Message) -> None: ...


class SignIn(Protocol):
    """The connections page's way in (CONTRACT §11; ``bot.signin.PageService``)."""

    async def link(self, user: CliqUser) -> str: ...


@dataclass(frozen=True)
class Context:
    settings: Settings
    catalog: ServiceCatalog  # the services a connection can use (default and custom)
    connections: ConnectionStore
    authorizations: AuthorizationStore
    audit: AuditStore
    accounts: Accounts
    files: Files
    router: Router | None = None  # the tree being dispatched (bot.router.dispatch sets it)
    invoker: Invoker | None = None  # what ctx.invoke calls through (bot.invoker; create_app)
    #: The reply when a handler lets ``NotAuthorized`` propagate: keeps the event and prompts
    #: to connect (bot.kept; create_app sets it, bot.router.dispatch calls it).
    on_not_authorized: NotAuthorizedHook | None = None
    signin: SignIn | None = None  # sign-in links to the connections page (CONTRACT §11)

    @cached_property
    def admin(self) -> ConnectionAdmin:
        """The rules of managing services and connections, for every door (chat, page)."""
        return ConnectionAdmin(
            is_admin=self.is_admin,
            catalog=self.catalog,
            connections=self.connections,
            authorizations=self.authorizations,
            audit=self.audit,
            accounts=self.accounts,
        )

    def is_admin(self, user: CliqUser) -> bool:
        """``BOT_ADMINS`` (by id or email) or a verified payload saying ``"admin": true``."""
        admins = self.settings.admins
        return (
            user.admin
            or user.id.lower() in admins
            or (bool(user.email) and user.email.lower() in admins)
        )

    def credential_user(self, conn: Connection, user_id: str) -> str:
        """Whose credentials an action on ``conn`` uses: the sender's when the switch is on."""
        return user_id if conn.login_user_credentials else conn.owner_id

    async def invoke(
        self,
        link: str,
        user: CliqUser,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> InvokeResponse:
        """Call ``url`` with connection ``link``'s token for ``user`` (CONTRACT §10): the
        user's own with the switch on, the owner's with it off (:meth:`credential_user`)."""
        if self.invoker is None:
            raise RuntimeError("ctx.invoke has no invoker: create_app wires one")
        conn = await self.connections.require(link)
        return await self.invoker.invoke(
            conn,
            self.credential_user(conn, user.id),
            method,
            url,
            params=params,
            headers=headers,
            json=json,
            data=data,
            timeout=timeout,
        )


NotAuthorizedHook: TypeAlias = Callable[[Event, Context, NotAuthorized], Awaitable[Message]]
