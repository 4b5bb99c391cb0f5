"""Per-user OAuth: connect links, the callback, the linking check, refresh, revoke.

Token safety rules kept here (where bolt-python, Bot Framework and Nango have slipped):

- tokens and PKCE verifiers are sealed with AES-GCM before they reach MongoDB, with the record's
  identity as associated data, so a ciphertext moved to another record does not open;
- one refresh per authorization at a time across every process: a lease in MongoDB, and the
  record is re-read after taking it, so a token another process just refreshed is reused;
- a rotated refresh token is kept; ``invalid_grant`` marks the authorization ``disconnected``;
- a token is refreshed ahead of expiry by a margin that fits its lifetime (120 s, or a tenth of
  a shorter lifetime), so a 60 s token is not refreshed on every use;
- a grant without a refresh token is accepted: the user is told when to renew it, it is used
  until it expires, and then it is ``disconnected`` without any refresh attempt;
- a callback ``error=`` other than ``access_denied`` is the provider's error, shown as such;
- nothing secret is logged or put into an exception message.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import logging
import secrets
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from bot import durations
from bot.cliq.events import CliqUser
from bot.cliq.messages import Message, text
from bot.config import Settings
from bot.context import Notifier, RevokeOutcome
from bot.errors import (
    BotError,
    InvalidGrant,
    InvalidState,
    LinkGone,
    NotAuthorized,
    OAuthError,
    ProviderError,
    ServerError,
)
from bot.metrics import Metrics
from bot.providers.kinds import requested_scopes
from bot.providers.oauth2 import (
    Account,
    OAuth2Client,
    OAuth2Service,
    TokenSet,
    authorization_url,
    new_code_verifier,
    new_state,
)
from bot.sealing import (
    ACCESS,
    REFRESH,
    SealedDoc,
    TokenPart,
    open_token,
    open_verifier,
    seal_tokens,
    seal_verifier,
    sealed_parts,
)
from bot.services import ServiceCatalog
from bot.vault import Vault
from storage.authorizations import Authorizations, ConnectLinks, OAuthStates
from storage.connections import Connections
from storage.records import CONNECTED, PENDING, Authorization, Connection, OAuthState

log = logging.getLogger(__name__)

LINKING_WINDOW = 300.0
LINKING_TRIES = 5
_REFRESH_MARGIN = 120.0  # at most; a shorter-lived token gets a tenth of its lifetime
_MARGIN_SHARE = 0.1
_ERROR_LIMIT = 200  # characters of a provider's error description that are shown
_LEASE_SECONDS = 30.0
_LEASE_WAIT = 20.0

ConnectedHook = Callable[[str, str], Awaitable[None]]


def _code_hash(code: str, link: str, user_id: str) -> str:
    return hashlib.sha256(f"{link}:{user_id}:{code}".encode()).hexdigest()


def refresh_margin(lifetime: float | None) -> float:
    """Seconds before expiry a token is refreshed (CONTRACT §8): 120, or a tenth of a shorter
    lifetime (a 60 s token: 6 s). Unknown lifetime (records from before it was kept): 120."""
    if lifetime is None:
        return _REFRESH_MARGIN
    return min(_REFRESH_MARGIN, _MARGIN_SHARE * lifetime)


def _due(auth: Authorization, now: float) -> bool:
    """The access token is within its refresh margin of expiring (or past it)."""
    return auth.expires_at is not None and auth.expires_at - refresh_margin(auth.lifetime) < now


def renewal_note(has_refresh_token: bool, expires_at: float | None) -> str:
    """For a grant without a refresh token: when it must be renewed ("" if never needed)."""
    if has_refresh_token or expires_at is None:
        return ""
    minutes = max(1, round((expires_at - time.time()) / 60))
    span = durations.words(minutes * 60) if minutes < 120 else f"{round(minutes / 60)} hours"
    at = datetime.fromtimestamp(expires_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        " The service gave no refresh token, so this connection must be renewed when its"
        f" access token expires, in about {span} (at {at}): connect again then."
    )


def _shown(value: str, limit: int) -> str:
    """A provider's text for people: one line, at most ``limit`` characters."""
    flat = " ".join(value.split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _chat_quoted(value: str) -> str:
    """Provider text in a chat message: HTML-escaped, as inline code (no markup applies)."""
    return "`" + html.escape(value.replace("`", "'"), quote=False) + "`"


@dataclass(frozen=True)
class CallbackResult:
    """What the callback page shows."""

    status: int
    title: str
    body: str
    code: str | None = None


class AccountService:
    def __init__(
        self,
        *,
        settings: Settings,
        public_url: Callable[[], str],
        catalog: ServiceCatalog,
        connections: Connections,
        authorizations: Authorizations,
        links: ConnectLinks,
        states: OAuthStates,
        vault: Vault,
        oauth: OAuth2Client,
        notifier: Notifier,
        metrics: Metrics,
    ) -> None:
        self._settings = settings
        self._public_url = public_url
        self._catalog = catalog
        self._connections = connections
        self._auths = authorizations
        self._links = links
        self._states = states
        self._vault = vault
        self._oauth = oauth
        self._notifier = notifier
        self._metrics = metrics
        self._holder = f"{uuid.uuid4().hex[:12]}"
        self.on_connected: list[ConnectedHook] = []

    @property
    def redirect_uri(self) -> str:
        return f"{self._public_url()}/oauth/callback"

    # -- connect links and the OAuth dance --

    async def connect_url(self, conn: Connection, user: CliqUser) -> str:
        await self._catalog.oauth_service(conn.service)  # an unconfigured service fails here
        link_id = secrets.token_urlsafe(12)
        await self._links.create(
            link_id, conn.link, user.id, user.email, float(self._settings.connect_link_ttl)
        )
        return f"{self._public_url()}/connect/{link_id}"

    async def begin(self, link_id: str) -> str:
        """Consume a connect link; the provider's authorize URL to redirect to."""
        connect_link = await self._links.consume(link_id)
        if connect_link is None:
            raise LinkGone("This connect link was used already, has expired, or never existed.")
        conn = await self._connections.get(connect_link.connection)
        if conn is None:
            raise LinkGone("The connection of this link has been deleted.")
        service = await self._catalog.oauth_service(conn.service)
        state, verifier = new_state(), new_code_verifier()
        await self._states.create(
            state,
            conn.link,
            connect_link.user_id,
            connect_link.user_email,
            seal_verifier(self._vault, state, verifier),
            ttl=max(600.0, float(self._settings.connect_link_ttl)),
        )
        return authorization_url(
            service,
            redirect_uri=self.redirect_uri,
            state=state,
            code_verifier=verifier,
            scopes=requested_scopes(service, conn.scopes),
        )

    async def complete(
        self, state: str, code: str, error: str, description: str = "", server: str = ""
    ) -> CallbackResult:
        """The OAuth callback. Raises ``InvalidState`` before anything is exchanged or stored.

        ``error=access_denied`` is the user's refusal; any other ``error`` (with its
        ``error_description``) is the provider's error, shown as such (CONTRACT §8).
        ``server`` is the data centre the sign-in came back from (Zoho's ``accounts-server``):
        the code is exchanged there, and the authorization remembers it for its refreshes and
        revocation; one the service does not list is refused before anything is sent.
        """
        pending, conn = await self._take_state(state)
        if error == "access_denied":
            return await self._denied(conn, pending.user_id)
        if error:
            return await self._provider_refused(conn, pending.user_id, error, description)
        if not code:
            self._metrics.callbacks.inc(outcome="invalid_request")
            raise InvalidState("The sign-in answer has no code.")
        home = await self._catalog.oauth_service(conn.service)
        try:
            service = home.at_server(server)
        except ValueError:
            self._metrics.callbacks.inc(outcome="invalid_request")
            log.warning("the sign-in for %s came back from an unknown server", conn.link)
            raise InvalidState(
                f"The sign-in came back from {_shown(server, 100)}, which is not one of"
                f" {home.name}'s servers, so nothing was sent there."
            ) from None
        regional = service.origin if service is not home else None
        verifier = open_verifier(self._vault, pending)
        try:
            tokens = await self._oauth.exchange_code(
                service, code=code, redirect_uri=self.redirect_uri, code_verifier=verifier
            )
            account = await self._oauth.fetch_account(service, tokens.access_token.reveal())
        except (OAuthError, ProviderError) as err:
            self._metrics.callbacks.inc(outcome="provider_error")
            log.warning("code exchange for %s failed: %s", conn.link, type(err).__name__)
            return CallbackResult(
                502,
                "Could not connect",
                f"{service.name} did not accept the sign-in. Ask the bot for a"
                " new link and try again.",
            )
        who = account.email or account.name or account.id or "your account"
        if self._settings.verify_linking:
            return await self._hold_for_linking(conn, pending, tokens, account, who, regional)
        await self._store(
            conn,
            pending.user_id,
            pending.user_email,
            tokens,
            account.__dict__,
            status=CONNECTED,
            server=regional,
        )
        self._metrics.callbacks.inc(outcome="connected")
        renew = renewal_note(tokens.refresh_token is not None, tokens.expires_at)
        await self._connected(conn, pending.user_id, who, renew)
        return CallbackResult(
            200,
            f"Connected as {who}",
            f"Connected as {who}. You can close this page and go back to chat.{renew}",
        )

    async def _take_state(self, state: str) -> tuple[OAuthState, Connection]:
        """Consume the callback's ``state``: who signs in, to which connection."""
        if not state:
            raise self._invalid_state("The sign-in answer has no state.")
        pending = await self._states.consume(state)
        if pending is None:
            raise self._invalid_state(
                "This sign-in answer is unknown, was used already, or expired."
            )
        conn = await self._connections.get(pending.connection)
        if conn is None:
            raise self._invalid_state("The connection was deleted while you were signing in.")
        return pending, conn

    def _invalid_state(self, message: str) -> InvalidState:
        self._metrics.callbacks.inc(outcome="invalid_state")
        return InvalidState(message)

    async def _denied(self, conn: Connection, user_id: str) -> CallbackResult:
        self._metrics.callbacks.inc(outcome="denied")
        await self._notifier.notify(
            [user_id],
            text(
                f"You did not allow access to *{conn.name}*, so nothing was connected."
                " Files I kept for you stay kept; say `connect` to try again."
            ),
        )
        return CallbackResult(
            200, "Access not allowed", "You did not allow access. Nothing was connected."
        )

    async def _provider_refused(
        self, conn: Connection, user_id: str, error: str, description: str
    ) -> CallbackResult:
        """The provider sent the user back with an error of its own (not a refusal)."""
        self._metrics.callbacks.inc(outcome="provider_error")
        code, said = _shown(error, 64), _shown(description, _ERROR_LIMIT)
        log.info("the provider of %s answered the sign-in with error %r", conn.link, code)
        in_chat = _chat_quoted(code) + (f": {_chat_quoted(said)}" if said else "")
        await self._notifier.notify(
            [user_id],
            text(
                f"Connecting *{conn.name}* failed: the service answered with the error"
                f" {in_chat}. Nothing was connected; files I kept for you stay kept. Say"
                " `connect` to try again."
            ),
        )
        return CallbackResult(
            502,
            "The service reported an error",
            f"The service answered with the error {code}"
            + (f": {said}" if said else "")
            + ". Nothing was connected. Ask the bot for a new link and try again.",
        )

    async def _hold_for_linking(
        self,
        conn: Connection,
        pending: OAuthState,
        tokens: TokenSet,
        account: Account,
        who: str,
        server: str | None,
    ) -> CallbackResult:
        """The linking check (``BOT_VERIFY_LINKING``): store the authorization as pending until
        the chat user sends the code shown on the page."""
        code6 = f"{secrets.randbelow(10**6):06d}"
        await self._store(
            conn,
            pending.user_id,
            pending.user_email,
            tokens,
            account.__dict__,
            status=PENDING,
            pending={
                "code_hash": _code_hash(code6, conn.link, pending.user_id),
                "expires_at": time.time() + LINKING_WINDOW,
                "tries": 0,
            },
            server=server,
        )
        self._metrics.callbacks.inc(outcome="pending")
        renew = renewal_note(tokens.refresh_token is not None, tokens.expires_at)
        return CallbackResult(
            200,
            "One more step",
            f"Signed in as {who}.{renew} Send this code to the bot in chat within"
            f" {durations.words(LINKING_WINDOW)} to finish connecting:",
            code=code6,
        )

    async def _store(
        self,
        conn: Connection,
        user_id: str,
        user_email: str,
        tokens: TokenSet,
        account: dict[str, str],
        *,
        status: str,
        pending: dict[str, object] | None = None,
        server: str | None = None,
    ) -> Authorization:
        access, refresh = self._seal(conn.link, user_id, tokens)
        return await self._auths.save(
            conn.link,
            user_id,
            user_email=user_email,
            status=status,
            account={k: str(v) for k, v in account.items()},
            access=access,
            refresh=refresh,
            expires_at=tokens.expires_at,
            scope=tokens.scope,
            pending=pending,
            lifetime=tokens.lifetime,
            server=server,
        )

    def _seal(
        self, link: str, user_id: str, tokens: TokenSet
    ) -> tuple[SealedDoc, SealedDoc | None]:
        refresh = tokens.refresh_token.reveal() if tokens.refresh_token is not None else None
        return seal_tokens(self._vault, link, user_id, tokens.access_token.reveal(), refresh)

    async def _connected(self, conn: Connection, user_id: str, who: str, renew: str = "") -> None:
        await self._notifier.notify([user_id], text(f"Connected as {who} to *{conn.name}*.{renew}"))
        for hook in self.on_connected:
            await hook(conn.link, user_id)

    # -- the linking check --

    async def verify_code(self, user: CliqUser, code: str) -> Message | None:
        pending = await self._auths.pending_of_user(user.id)
        if not pending:
            return None
        now = time.time()
        for auth in pending:
            info = auth.pending or {}
            conn = await self._connections.get(auth.link)
            if conn is None:
                continue
            if float(info.get("expires_at", 0)) < now:
                await self.revoke(conn, user.id, forget=True)
                return text(
                    f"That sign-in waited more than {durations.words(LINKING_WINDOW)} and was"
                    " discarded. Say `connect` to start again."
                )
            tries = await self._auths.count_try(auth.link, user.id)
            expected = str(info.get("code_hash", ""))
            if hmac.compare_digest(expected, _code_hash(code, auth.link, user.id)) and (
                await self._auths.activate(auth.link, user.id)
            ):
                who = auth.account_email or auth.account_name or "your account"
                self._metrics.callbacks.inc(outcome="linked")
                renew = renewal_note(auth.refresh is not None, auth.expires_at)
                await self._connected(conn, user.id, who, renew)
                return text(f"Code accepted: your account is linked to *{conn.name}*.")
            if tries >= LINKING_TRIES:
                await self.revoke(conn, user.id, forget=True)
                return text(
                    "Too many wrong codes: that sign-in was discarded."
                    " Say `connect` to start again."
                )
            return text(f"That code is not right ({LINKING_TRIES - tries} tries left).")
        return None

    async def discard_expired_pending(self) -> int:
        """Discard linking checks nobody finished in time, revoking them at the provider."""
        discarded = 0
        for auth in await self._auths.expired_pending(time.time()):
            conn = await self._connections.get(auth.link)
            if conn is None:
                await self._auths.delete(auth.link, auth.user_id)
            else:
                await self.revoke(conn, auth.user_id, forget=True)
            discarded += 1
        return discarded

    # -- tokens for actions --

    def tokens(self, link: str, user_id: str) -> UserTokens:
        return UserTokens(self, link, user_id)

    async def access_token(self, link: str, user_id: str, *, wait: float = _LEASE_WAIT) -> str:
        """The user's access token, refreshed first when it is due (``wait``: as in
        :meth:`refresh`)."""
        auth = await self._auths.get(link, user_id)
        if auth is None or not auth.connected or auth.access is None:
            raise NotAuthorized(f"{user_id} has not connected {link}")
        if auth.refresh is None:  # nothing to refresh with: used until it expires, no margin
            if auth.expires_at is not None and auth.expires_at <= time.time():
                await self._auths.mark_disconnected(link, user_id)
                self._metrics.refreshes.inc(outcome="no_refresh_token")
                log.info("the token of %s for %s expired without a refresh token", user_id, link)
                raise NotAuthorized(f"{user_id} must connect {link} again")
            return self._open(auth, ACCESS)
        if _due(auth, time.time()):
            return await self.refresh(link, user_id, rejected=self._open(auth, ACCESS), wait=wait)
        return self._open(auth, ACCESS)

    def _open(self, auth: Authorization, part: TokenPart) -> str:
        sealed = sealed_parts(auth).get(part)
        if sealed is None:
            what = "access" if part == ACCESS else "refresh"
            raise NotAuthorized(f"{auth.user_id} has no {what} token for {auth.link}")
        return open_token(self._vault, auth.link, auth.user_id, part, sealed)

    async def refresh(
        self, link: str, user_id: str, *, rejected: str, wait: float = _LEASE_WAIT
    ) -> str:
        """A fresh access token; at most one refresh at a time for this authorization.

        Another process's refresh is waited for at most ``wait`` seconds (a caller with a
        deadline passes what is left of it). A refresh under way is never cancelled: the
        provider may have rotated the refresh token, and the new one must be stored."""
        deadline = time.monotonic() + min(wait, _LEASE_WAIT)
        while True:
            if await self._auths.take_lease(link, user_id, self._holder, _LEASE_SECONDS):
                try:
                    return await self._refresh_holding_lease(link, user_id, rejected)
                finally:
                    await self._auths.release_lease(link, user_id, self._holder)
            await asyncio.sleep(0.1)
            fresh = await self._fresh_other_than(link, user_id, rejected)
            if fresh is not None:
                self._metrics.refreshes.inc(outcome="reused")
                return fresh
            if time.monotonic() > deadline:
                raise ServerError("another process holds the refresh lease for too long")

    async def _fresh_other_than(self, link: str, user_id: str, rejected: str) -> str | None:
        auth = await self._auths.get(link, user_id)
        if auth is None or not auth.connected:
            raise NotAuthorized(f"{user_id} is no longer connected to {link}")
        current = self._open(auth, ACCESS)
        if current != rejected and not _due(auth, time.time()):
            return current
        return None

    async def _refresh_holding_lease(self, link: str, user_id: str, rejected: str) -> str:
        fresh = await self._fresh_other_than(link, user_id, rejected)  # re-read after the lease
        if fresh is not None:
            self._metrics.refreshes.inc(outcome="reused")
            return fresh
        auth = await self._auths.get(link, user_id)
        assert auth is not None
        conn = await self._connections.get(link)
        if conn is None:
            raise NotAuthorized(f"{link} was deleted")
        if auth.refresh is None:
            await self._auths.mark_disconnected(link, user_id)
            self._metrics.refreshes.inc(outcome="no_refresh_token")
            raise NotAuthorized(f"{user_id} has no refresh token for {link}")
        service = await self._service_of(conn, auth)
        try:
            tokens = await self._oauth.refresh(service, self._open(auth, REFRESH))
        except InvalidGrant:
            await self._auths.mark_disconnected(link, user_id)
            self._metrics.refreshes.inc(outcome="invalid_grant")
            log.info("refresh token of %s for %s was rejected; marked disconnected", user_id, link)
            raise NotAuthorized(f"{user_id} must connect {link} again") from None
        except BotError:
            self._metrics.refreshes.inc(outcome="error")
            raise
        access, refresh = self._seal(link, user_id, tokens)
        stored = await self._auths.store_refreshed(
            link,
            user_id,
            self._holder,
            access=access,
            refresh=refresh,
            expires_at=tokens.expires_at,
            lifetime=tokens.lifetime,
        )
        if not stored:
            raise NotAuthorized(f"{user_id} was disconnected from {link} during a refresh")
        self._metrics.refreshes.inc(outcome="ok")
        return tokens.access_token.reveal()

    async def _service_of(self, conn: Connection, auth: Authorization) -> OAuth2Service:
        """The connection's service at the data centre that issued ``auth``'s tokens. One the
        service no longer lists gets nothing sent to it: the home server is asked instead
        (which refuses the tokens, so the user is asked to connect again)."""
        home = await self._catalog.oauth_service(conn.service)
        try:
            return home.at_server(auth.server)
        except ValueError:
            log.warning("%s for %s: its data centre is no longer listed", conn.link, auth.user_id)
            return home

    # -- revoke --

    async def revoke(self, conn: Connection, user_id: str, *, forget: bool) -> RevokeOutcome:
        auth = await self._auths.get(conn.link, user_id)
        if auth is None or (auth.access is None and auth.refresh is None):
            if auth is not None and forget:
                await self._auths.delete(conn.link, user_id)
            return RevokeOutcome(had_authorization=False, provider_ok=True)
        provider_ok = True
        try:
            service = await self._service_of(conn, auth)
            await self._oauth.revoke(
                service,
                access_token=self._open(auth, ACCESS) if auth.access else None,
                refresh_token=self._open(auth, REFRESH) if auth.refresh else None,
            )
        except BotError as err:
            provider_ok = False
            log.warning(
                "revoking %s for %s at the provider failed: %s",
                conn.link,
                user_id,
                type(err).__name__,
            )
        if forget:
            await self._auths.delete(conn.link, user_id)
        else:
            await self._auths.mark_disconnected(conn.link, user_id)
        return RevokeOutcome(had_authorization=True, provider_ok=provider_ok)


class UserTokens:
    """The relay's ``TokenSource`` for one authorization."""

    def __init__(self, accounts: AccountService, link: str, user_id: str) -> None:
        self._accounts = accounts
        self._link = link
        self._user_id = user_id

    async def access_token(self) -> str:
        return await self._accounts.access_token(self._link, self._user_id)

    async def refreshed_token(self, rejected: str) -> str:
        return await self._accounts.refresh(self._link, self._user_id, rejected=rejected)
