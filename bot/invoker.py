"""``ctx.invoke`` over aiohttp (CONTRACT §10): any API, with a connection's access token.

:class:`HttpInvoker` implements :class:`bot.invoke.Invoker` on the runtime's one shared
``ClientSession``. For one call, with the token of the credential user
(:meth:`bot.context.Context.invoke` picks it by the connection's switch):

1. the token comes from :class:`bot.accounts.AccountService`, refreshed first when it is about to
   expire (the single-flight refresh of CONTRACT §7.5, one per authorization across processes);
2. it goes as the service's ``param_type`` says: ``Authorization: Bearer <token>``, or the query
   parameter ``access_token=<token>``;
3. a 401 answer gets one refresh (``rejected=`` the token it refused, so concurrent callers share
   one refresh) and one retry; a 429 one wait of its ``Retry-After`` when that fits in what is left
   of ``timeout``, and one retry;
4. at most :data:`~bot.invoke.MAX_BODY` of the answer is read: more is a ``ChatError``.

Every wait is bounded by ``timeout``: HTTP through aiohttp's own timeout, the 429 wait by what
is left. Network errors and timeouts become a ``ChatError`` naming the host and what happened;
the URL, its query (where a ``query`` token travels) and the token are never part of a log line,
a reply or an error message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from multidict import CIMultiDict

from bot.accounts import AccountService
from bot.errors import BotError, ChatError, NotAuthorized, StoreError
from bot.invoke import DEFAULT_TIMEOUT, MAX_BODY, InvokeResponse, Params, ServiceUsage
from bot.providers.oauth2 import OAuth2Service
from bot.retry import retry_after
from bot.services import ServiceCatalog
from storage.records import Connection

__all__ = ["HttpInvoker"]

log = logging.getLogger(__name__)

_CHUNK = 64 * 1024
_TOO_LARGE = f"the answer is larger than {MAX_BODY // 2**20} MiB"


@dataclass(frozen=True)
class _Call:
    """One request as the plugin asked for it, the token still to be added."""

    method: str
    url: str
    params: list[tuple[str, str]]
    headers: Mapping[str, str]
    json: Any
    data: bytes | str | Mapping[str, str] | None
    timeout: float

    @property
    def host(self) -> str:
        return urlsplit(self.url).netloc or self.url[:40]

    @property
    def where(self) -> str:
        """Host and path, without the query: what log lines and errors may name."""
        parts = urlsplit(self.url)
        return f"{parts.netloc}{parts.path}"


class HttpInvoker:
    """:class:`bot.invoke.Invoker` on aiohttp; tokens through :class:`AccountService`."""

    def __init__(
        self, http: aiohttp.ClientSession, accounts: AccountService, catalog: ServiceCatalog
    ) -> None:
        self._http = http
        self._accounts = accounts
        self._catalog = catalog

    async def usage(self, service: str) -> ServiceUsage:
        found = await self._catalog.oauth_service(service)
        if found.kind == "dropbox" and found.api_url:
            return ServiceUsage(
                found.param_type, "POST", f"{found.api_url}/2/users/get_current_account"
            )
        if found.userinfo_url:
            return ServiceUsage(found.param_type, "GET", found.userinfo_url)
        origin = urlsplit(found.token_url)
        return ServiceUsage(found.param_type, "GET", f"{origin.scheme}://{origin.netloc}/")

    async def invoke(
        self,
        conn: Connection,
        credential_user: str,
        method: str,
        url: str,
        *,
        params: Params | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        data: bytes | str | Mapping[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> InvokeResponse:
        if json is not None and data is not None:
            raise TypeError("ctx.invoke takes json= or data=, not both")
        if not timeout > 0:
            raise ValueError(f"timeout is a positive number of seconds, not {timeout!r}")
        if urlsplit(url).scheme not in ("http", "https"):
            raise ChatError(f"`{url[:80]}` is not an http(s) URL.")
        call = _Call(method.upper(), url, _pairs(params), headers or {}, json, data, timeout)
        deadline = time.monotonic() + timeout
        service = await self._catalog.oauth_service(conn.service)
        token = await self._token(conn.link, credential_user, deadline)
        response = await self._send(service, call, token, deadline)
        if response.status == 401:
            log.info("invoke %s: 401, refreshing %s for %s", call.where, conn.link, credential_user)
            token = await self._token(conn.link, credential_user, deadline, rejected=token)
            response = await self._send(service, call, token, deadline)
        if response.status == 429:
            wait = retry_after(response.headers)
            if time.monotonic() + wait < deadline:
                log.info("invoke %s: 429, waiting %.1f s once", call.where, wait)
                await asyncio.sleep(wait)
                response = await self._send(service, call, token, deadline)
        return response

    async def _token(
        self, link: str, user_id: str, deadline: float, *, rejected: str | None = None
    ) -> str:
        """The access token (refreshed once if ``rejected`` is the one a service refused);
        another process's refresh is waited for only until ``deadline``."""
        wait = max(0.0, deadline - time.monotonic())
        try:
            if rejected is None:
                return await self._accounts.access_token(link, user_id, wait=wait)
            return await self._accounts.refresh(link, user_id, rejected=rejected, wait=wait)
        except NotAuthorized:
            raise NotAuthorized(
                f"`{link}` is not connected (never connected, revoked, or its sign-in can no"
                " longer be renewed); connect it first.",
                link=link,
                user_id=user_id,
            ) from None
        except (ChatError, StoreError):
            raise
        except BotError as err:  # the token endpoint failed: say so, never with its answer
            log.warning("renewing the token of %s for %s failed: %s", link, user_id, err)
            raise ChatError(
                f"The sign-in of `{link}` could not be renewed right now"
                f" ({type(err).__name__}); try again in a minute."
            ) from None

    async def _send(
        self, service: OAuth2Service, call: _Call, token: str, deadline: float
    ) -> InvokeResponse:
        left = deadline - time.monotonic()
        if left <= 0:
            raise ChatError(f"The call to {call.host} ran out of time before it could be sent.")
        headers: CIMultiDict[str] = CIMultiDict(call.headers)
        params = list(call.params)
        if service.param_type == "query":
            params = [(k, v) for k, v in params if k != "access_token"]
            params.append(("access_token", token))
        else:
            headers["Authorization"] = f"Bearer {token}"
        try:
            async with self._http.request(
                call.method,
                call.url,
                params=params or None,
                headers=headers,
                json=call.json,
                data=call.data,
                timeout=aiohttp.ClientTimeout(total=left),
            ) as resp:
                body = await _read_capped(resp)
                log.debug("invoke %s %s -> %s", call.method, call.where, resp.status)
                return InvokeResponse(resp.status, resp.headers.copy(), body)
        except TimeoutError:
            raise ChatError(
                f"The call to {call.host} did not finish within {call.timeout:g} s."
            ) from None
        except aiohttp.ClientError as exc:  # its text can carry the URL: only its kind is named
            raise ChatError(f"The call to {call.host} failed: {_network_problem(exc)}.") from None


async def _read_capped(resp: aiohttp.ClientResponse) -> bytes:
    if resp.content_length is not None and resp.content_length > MAX_BODY:
        raise ChatError(f"The call answered {resp.status}, but {_TOO_LARGE}.")
    body = bytearray()
    async for chunk in resp.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > MAX_BODY:
            raise ChatError(f"The call answered {resp.status}, but {_TOO_LARGE}.")
    return bytes(body)


def _pairs(params: Params | None) -> list[tuple[str, str]]:
    if params is None:
        return []
    items = params.items() if isinstance(params, Mapping) else params
    return [(str(k), str(v)) for k, v in items]


def _network_problem(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return "the host could not be reached"
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the answer broke off"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "too many redirects"
    if isinstance(exc, aiohttp.InvalidURL):
        return "the URL is not valid"
    return f"a network error ({type(exc).__name__})"
