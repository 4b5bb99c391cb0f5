"""The rules of managing services and connections (CONTRACT §5), whatever door they come by.

The chat door (``handlers/``) parses a subcommand, calls :class:`ConnectionAdmin` and words the
reply; the connections page (CONTRACT §11) calls the very same methods. One rule, two doors:
who may do what, "revoke it first", "unpublish first", "service in use", what can be published,
and the audit record of every change live here and nowhere else.

Methods take the acting :class:`~bot.cliq.events.CliqUser` and typed arguments, return typed
results, and raise the :class:`~bot.errors.ChatError` subclasses whose text is shown as it is:
``NotAllowed`` (not an admin, not the owner), ``UsageError`` (a value that cannot be used),
``NotFound`` (no such connection) and ``Conflict`` (the change breaks a rule). Nothing is
changed and nothing is audited when one is raised.

Part of the core: this module imports neither ``handlers/`` nor aiohttp nor pymongo.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.cliq.events import CliqUser
from bot.errors import Conflict, NotAllowed, UsageError
from storage.records import CONNECTED, Authorization, Connection, link_name

if TYPE_CHECKING:
    from bot.context import (
        Accounts,
        AuditStore,
        AuthorizationStore,
        ConnectionStore,
        RevokeOutcome,
        ServiceCatalog,
        ServiceInfo,
    )

__all__ = ["ConnectionAdmin", "Overview", "OwnedConnection", "Published", "SharedConnection"]

NOT_CONNECTED = "not connected"


@dataclass(frozen=True)
class Published:
    connection: Connection
    previous: tuple[str, ...]  # link names that are no longer published


@dataclass(frozen=True)
class OwnedConnection:
    connection: Connection
    status: str  # the owner's authorization: "connected", "not connected", "disconnected", ...


@dataclass(frozen=True)
class SharedConnection:
    connection: Connection
    authorization: Authorization  # the user's own


@dataclass(frozen=True)
class Overview:
    """A user's connections: created by them, and created by others but authenticated by them."""

    mine: tuple[OwnedConnection, ...]
    shared: tuple[SharedConnection, ...]


@dataclass(frozen=True)
class ConnectionAdmin:
    is_admin: Callable[[CliqUser], bool]
    catalog: ServiceCatalog
    connections: ConnectionStore
    authorizations: AuthorizationStore
    audit: AuditStore
    accounts: Accounts

    # -- reads -------------------------------------------------------------------------------

    async def owner_status(self, conn: Connection) -> str:
        """The status of the owner's authorization, ``"not connected"`` when there is none."""
        auth = await self.authorizations.get(conn.link, conn.owner_id)
        if auth is None:
            return NOT_CONNECTED
        return "connected" if auth.status == CONNECTED else auth.status

    async def overview(self, user: CliqUser) -> Overview:
        mine = [
            OwnedConnection(c, await self.owner_status(c))
            for c in await self.connections.owned_by(user.id)
        ]
        auths = {a.link: a for a in await self.authorizations.of_user(user.id)}
        shared = sorted(
            (c for c in await self.connections.by_links(list(auths)) if c.owner_id != user.id),
            key=lambda c: c.link,
        )
        return Overview(tuple(mine), tuple(SharedConnection(c, auths[c.link]) for c in shared))

    async def others(self, actor: CliqUser) -> tuple[OwnedConnection, ...]:
        """Every connection someone else created, with its owner's status: what an admin
        manages besides their own (``publish``, ``set``, ``revoke``, ``delete`` take any link)."""
        self._require_admin(actor)
        return tuple(
            [
                OwnedConnection(c, await self.owner_status(c))
                for c in await self.connections.not_owned_by(actor.id)
            ]
        )

    # -- services ----------------------------------------------------------------------------

    async def add_service(
        self, actor: CliqUser, name: str, options: Mapping[str, str]
    ) -> ServiceInfo:
        """A custom OAuth2 service; the catalogue checks the options and seals the secret."""
        self._require_admin(actor)
        info = await self.catalog.add_custom(name, dict(options), actor.id)
        await self._record(actor, "service.add", info.name)
        return info

    async def configure_service(
        self, actor: CliqUser, name: str, options: Mapping[str, str]
    ) -> ServiceInfo:
        """Enable default service ``name`` with the organisation's OAuth client (CONTRACT §5
        ``service configure``); the catalogue checks the options and seals the secret."""
        self._require_admin(actor)
        info = await self.catalog.configure_default(name, dict(options), actor.id)
        await self._record(actor, "service.configure", info.name)
        return info

    async def remove_service(self, actor: CliqUser, name: str) -> ServiceInfo:
        """Refused for a default service and while a connection uses it."""
        self._require_admin(actor)
        info = await self.catalog.info(name)
        if info is None:
            raise UsageError(f"There is no service `{name}`.")
        if info.default:
            raise Conflict(f"`{info.name}` is a default service and cannot be removed.")
        users = await self.connections.using_service(info.name)
        if users:
            raise Conflict(
                f"`{info.name}` is used by {', '.join(f'`{u}`' for u in users)};"
                " delete those first."
            )
        await self.catalog.remove_custom(info.name)
        await self._record(actor, "service.remove", info.name)
        return info

    # -- connections -------------------------------------------------------------------------

    async def create(
        self,
        actor: CliqUser,
        name: str,
        *,
        service: str,
        scopes: Sequence[str],
        login_user_credentials: bool = True,
    ) -> Connection:
        """A connection owned by ``actor``; its link name is derived from ``name``, unique."""
        self._require_admin(actor)
        name = name.strip()
        link = link_name(name)
        if not link:
            raise UsageError("The name needs at least one letter or digit.")
        service = service.lower()
        await self._check_scopes(service, scopes)
        info = await self.catalog.info(service)
        if info is not None and info.missing:  # a default service without its OAuth client
            raise Conflict(
                f"The service `{service}` is not configured yet: an admin can {info.missing}."
                " Nothing was created."
            )
        conn = Connection(
            link=link,
            name=name,
            service=service,
            scopes=tuple(scopes),
            login_user_credentials=login_user_credentials,
            owner_id=actor.id,
            owner_email=actor.email,
        )
        await self.connections.create(conn)
        await self._record(
            actor,
            "connection.create",
            link,
            service=service,
            scopes=list(scopes),
            login_user_credentials=login_user_credentials,
        )
        return conn

    async def change(
        self,
        actor: CliqUser,
        link: str,
        *,
        name: str | None = None,
        scopes: Sequence[str] | None = None,
        login_user_credentials: bool | None = None,
    ) -> Connection:
        """Name, scopes or switch; refused while the owner is connected ("revoke it first").
        The link name never changes."""
        self._require_admin(actor)
        if name is None and scopes is None and login_user_credentials is None:
            raise UsageError("Say what to change: name=, scopes= or login_user_credentials=.")
        conn = await self.connections.require(link)
        if await self.owner_status(conn) == CONNECTED:
            raise Conflict(
                f"`{link}` is connected; revoke it first (`revoke {link}`), then change it."
            )
        changes: dict[str, Any] = {}
        if name is not None:
            if not name.strip():
                raise UsageError("name= cannot be empty.")
            changes["name"] = name.strip()
        if scopes is not None:
            await self._check_scopes(conn.service, scopes)
            changes["scopes"] = list(scopes)
        if login_user_credentials is not None:
            if conn.published and not login_user_credentials:  # and the owner is not connected
                raise Conflict(
                    "A published connection cannot switch to the owner's credentials"
                    " while the owner is not connected."
                )
            changes["login_user_credentials"] = login_user_credentials
        updated = await self.connections.update(link, changes)
        await self._record(actor, "connection.set", link, **changes)
        return updated

    async def publish(self, actor: CliqUser, link: str) -> Published:
        """Make ``link`` the bot's upload connection: its service must receive files, and with
        the switch off its owner must be connected."""
        self._require_admin(actor)
        conn = await self.connections.require(link)
        info = await self.catalog.info(conn.service)
        if info is None or not info.receives_files:
            raise Conflict(
                f"`{link}` uses the service `{conn.service}`, which cannot receive files:"
                " only a Dropbox connection can be published as the bot's upload connection."
                " Nothing was changed."
            )
        if not conn.login_user_credentials and await self.owner_status(conn) != CONNECTED:
            raise Conflict(
                f"`{link}` runs on the owner's account, and the owner is not connected:"
                f" the owner runs `connect {link}` first."
            )
        previous = await self.connections.publish(link)
        await self._record(actor, "connection.publish", link)
        return Published(conn, tuple(previous))

    async def unpublish(self, actor: CliqUser, link: str) -> bool:
        """``False`` (and no change, no record) when ``link`` was not published."""
        self._require_admin(actor)
        conn = await self.connections.require(link)
        if not conn.published:
            return False
        await self.connections.update(link, {"published": False})
        await self._record(actor, "connection.unpublish", link)
        return True

    async def revoke(self, actor: CliqUser, link: str) -> RevokeOutcome:
        """The owner's authorization, at the provider and here; by the owner or an admin."""
        conn = await self.connections.require(link)
        if actor.id != conn.owner_id and not self.is_admin(actor):
            raise NotAllowed(
                "Only the connection's owner or an admin can revoke it; nothing changed."
            )
        outcome = await self.accounts.revoke(conn, conn.owner_id, forget=False)
        await self._record(actor, "connection.revoke", link)
        return outcome

    async def delete(self, actor: CliqUser, link: str) -> None:
        """Refused while published ("unpublish first"); revokes every authorization of it."""
        self._require_admin(actor)
        conn = await self.connections.require(link)
        if conn.published:
            raise Conflict(f"`{link}` is published; unpublish first (`unpublish {link}`).")
        for auth in await self.authorizations.of_connection(link):
            await self.accounts.revoke(conn, auth.user_id, forget=True)
        if not await self.connections.delete(link):
            raise Conflict(f"`{link}` was published meanwhile; unpublish first.")
        await self._record(actor, "connection.delete", link)

    async def disconnect(self, user: CliqUser, conn: Connection) -> RevokeOutcome:
        """The user's own authorization of ``conn``; with the switch off only the owner has one."""
        if user.id != conn.owner_id and not conn.login_user_credentials:
            raise Conflict(
                f"`{conn.link}` runs on its owner's account; you have nothing to disconnect."
            )
        return await self.accounts.revoke(conn, user.id, forget=True)

    async def connect_url(self, user: CliqUser, conn: Connection) -> str:
        """A connect link for ``user``'s own authorization of ``conn`` (the owner's, for the
        owner); with the switch off only the owner connects (``connect LINK``)."""
        if user.id != conn.owner_id and not conn.login_user_credentials:
            raise Conflict(
                f"`{conn.link}` runs on its owner's account for everyone;"
                " only the owner connects it."
            )
        return await self.accounts.connect_url(conn, user)

    # -- the rules they share ----------------------------------------------------------------

    def _require_admin(self, actor: CliqUser) -> None:
        if not self.is_admin(actor):
            raise NotAllowed("Only admins can do that; nothing was changed.")

    async def _check_scopes(self, service: str, scopes: Sequence[str]) -> None:
        if not scopes:
            raise UsageError("scopes must name at least one scope, e.g. scopes=files.content.write")
        info = await self.catalog.info(service)
        if info is None:
            raise UsageError(f"There is no service `{service}`. `services` lists them.")
        unknown = [s for s in scopes if info.scopes and s not in info.scopes]
        if unknown:
            raise UsageError(
                f"`{service}` does not offer {', '.join(unknown)}."
                f" It offers: {', '.join(info.scopes)}."
            )

    async def _record(self, actor: CliqUser, action: str, target: str, **details: Any) -> None:
        await self.audit.record(actor.id, actor.email, action, target, **details)
