"""The connections page (CONTRACT §11): each chat user's "My connections / Shared connections",
their files with live progress, and for admins every admin subcommand of ``/connection`` as a form.

The way in is a single-use sign-in link the bot gives in chat (``handlers/page.py``):

``GET /signin/{id}``
    consumes the link, starts a server-side session and sets its cookie (HttpOnly, SameSite=Lax,
    Secure when ``BOT_PUBLIC_URL`` is https), then **303** to ``/connections``; a used, unknown
    or expired link is a **410** page.
``GET /connections``
    the page; without a live session a **401** page saying how to sign in from chat.
``GET /connections/files.json``
    the user's files and their progress, polled by the page every second.
``POST /connections/...``
    every change. Each carries the session's CSRF token (a hidden field); without it, or with
    a wrong one: **403**, nothing changes. A change succeeds with a **303** back to the page
    (a notice shown once), or is refused with the page again and the reason next to the field
    it concerns.

Every change goes through the same domain code as the chat door: ``ctx.admin``
(:class:`bot.admin.ConnectionAdmin`: who may, "revoke it first", "unpublish first", the audit),
``ctx.files`` (Retry / Cancel). A session acts as, and sees, only its own chat user; admin
rights are ``Context.is_admin`` of that user on every request.

Templates are Jinja2 (``bot/web/templates/``) with autoescaping on. This module imports no
driver: it reaches the store through the components on the Runtime.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import jinja2
from aiohttp import web
from markupsafe import Markup, escape

from bot import durations
from bot.cliq.events import CliqUser
from bot.context import Context
from bot.errors import ChatError, Conflict, LinkGone, NotAllowed, NotFound, UsageError
from bot.files.names import human_size
from bot.keys import RUNTIME, SETTINGS
from storage.records import CONNECTED, Connection, link_name

if TYPE_CHECKING:
    from bot.signin import FileView, PageService
    from storage.sessions import PageSession

__all__ = ["COOKIE", "TEMPLATES", "routes", "setup"]

routes = web.RouteTableDef()

TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("page_templates", jinja2.Environment)
COOKIE = "cliqbot_session"
#: The cookie's name when it is Secure: the ``__Host-`` prefix pins it to this host and path /.
SECURE_COOKIE = "__Host-cliqbot_session"
PAGE = "/connections"
_HERE = Path(__file__).parent

_HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",  # the sign-in path must not leak to another site
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'"
    ),
}
_SIGN_IN_HOW = (
    "Send the bot `connections` in chat (or run `/{cmd} page`) and open the link it answers"
    " with. Each link works once, for {ttl}."
)


def setup(app: web.Application) -> None:
    """The page's routes, its static files and its template environment (autoescaping on)."""
    app[TEMPLATES] = environment()
    app.add_routes(routes)
    app.router.add_static(f"{PAGE}/static", _HERE / "static", append_version=False)


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["chat"] = chat_markup
    env.filters["size"] = _size
    env.filters["when"] = _when
    env.filters["link_name"] = link_name
    return env


_CODE = re.compile(r"`([^`]+)`")
_BOLD = re.compile(r"\*([^*\n]+)\*")


def chat_markup(value: str) -> Markup:
    """Chat text (the domain's messages) as HTML: escaped, with `code` and *bold* kept."""
    html = str(escape(value))
    html = _CODE.sub(r"<code>\1</code>", html)
    return Markup(_BOLD.sub(r"<strong>\1</strong>", html))


def _size(value: int | None) -> str:
    return "?" if value is None else human_size(value)


def _when(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC")


# -- sessions ------------------------------------------------------------------------------------


def _service(request: web.Request) -> PageService:
    signin = request.app[RUNTIME].components.context.signin
    if signin is None:
        raise web.HTTPNotFound(text="the connections page is not set up")
    # create_app wires a bot.signin.PageService as the context's SignIn (bot/app.py).
    return cast("PageService", signin)


def _context(request: web.Request) -> Context:
    return request.app[RUNTIME].components.context


def _secure(request: web.Request) -> bool:
    return request.app[RUNTIME].public_url.lower().startswith("https://")


def _cookie_name(request: web.Request) -> str:
    return SECURE_COOKIE if _secure(request) else COOKIE


@dataclass(frozen=True)
class Signed:
    """A request's live session: the opaque id from the cookie, and the session."""

    id: str
    session: PageSession

    @property
    def user(self) -> CliqUser:
        return self.session.user


async def _signed_in(request: web.Request) -> Signed | None:
    session_id = request.cookies.get(_cookie_name(request), "")
    session = await _service(request).session(session_id)
    return Signed(session_id, session) if session is not None else None


def _message(
    request: web.Request, title: str, body: str, *, status: int, signed: Signed | None = None
) -> web.Response:
    html = (
        request.app[TEMPLATES]
        .get_template("message.html")
        .render(title=title, body=body, signed_in=signed is not None)
    )
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


def _how_to_sign_in(request: web.Request) -> str:
    settings = request.app[SETTINGS]
    return _SIGN_IN_HOW.format(
        cmd=settings.command_name, ttl=durations.words(settings.connect_link_ttl)
    )


def _sign_in_needed(request: web.Request) -> web.Response:
    return _message(request, "Sign in from chat", _how_to_sign_in(request), status=401)


@routes.get("/signin/{link_id}")
async def signin(request: web.Request) -> web.StreamResponse:
    try:
        session_id, _ = await _service(request).open(request.match_info["link_id"])
    except LinkGone as err:
        body = f"{err} {_how_to_sign_in(request)}"
        return _message(request, "This sign-in link cannot be used", body, status=410)
    response = web.Response(status=303, headers={**_HEADERS, "Location": PAGE})
    response.set_cookie(
        _cookie_name(request),
        session_id,
        max_age=int(request.app[SETTINGS].page_session_ttl),
        path="/",
        httponly=True,
        secure=_secure(request),
        samesite="Lax",
    )
    return response


@routes.post(f"{PAGE}/logout")
async def logout(request: web.Request) -> web.StreamResponse:
    signed = await _signed_in(request)
    if signed is None:
        return _sign_in_needed(request)
    form = await request.post()
    if not _service(request).csrf_ok(signed.session, str(form.get("csrf", ""))):
        return _forbidden(request, signed)
    await _service(request).end(signed.id)
    response = _message(
        request, "Signed out", "You are signed out of your connections page.", status=200
    )
    response.del_cookie(_cookie_name(request), path="/")
    return response


def _forbidden(request: web.Request, signed: Signed) -> web.Response:
    return _message(
        request,
        "This form cannot be used",
        "The form did not carry this page's security token, so nothing was changed."
        " Reload your connections page and try again.",
        status=403,
        signed=signed,
    )


# -- the page ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One connection as a row of "My connections" or "Shared connections"."""

    connection: Connection
    status: str
    account: str = ""
    can_connect: bool = True
    can_disconnect: bool = False
    owner_connected: bool = False  # the owner's authorization: what Revoke revokes
    status_label: str = "Status"

    @property
    def connected(self) -> bool:
        return self.status == CONNECTED


@dataclass(frozen=True)
class Problem:
    """A refused change: the form it came from, the field it concerns ("" for the whole form),
    the reason, and what was typed (shown again)."""

    form: str
    field: str
    message: str
    values: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def value(self, form: str, name: str, default: str = "") -> str:
        return self.values.get(name, default) if form == self.form else default


async def _rows(ctx: Context, user: CliqUser) -> tuple[list[Row], list[Row], list[Row]]:
    """``/connection list``'s data (``ConnectionAdmin.overview``), with accounts and actions;
    for an admin also every other connection (``ConnectionAdmin.others``)."""
    admin = ctx.is_admin(user)
    overview = await ctx.admin.overview(user)
    # Every connection someone else created, with its owner's status: the shared ones among
    # them too (a shared connection is never the viewer's own).
    others = {o.connection.link: o for o in await ctx.admin.others(user)} if admin else {}
    mine = []
    for owned in overview.mine:
        auth = await ctx.authorizations.get(owned.connection.link, user.id)
        account = (auth.account_email or auth.account_name) if auth is not None else ""
        mine.append(
            Row(
                owned.connection,
                owned.status,
                account if owned.status == CONNECTED else "",
                can_connect=owned.status != CONNECTED,
                can_disconnect=auth is not None and auth.status == CONNECTED,
                owner_connected=owned.status == CONNECTED,
            )
        )
    shared = [
        Row(
            s.connection,
            s.authorization.status,
            s.authorization.account_email or s.authorization.account_name,
            can_connect=s.authorization.status != CONNECTED,
            can_disconnect=True,
            owner_connected=s.connection.link in others
            and others[s.connection.link].status == CONNECTED,
        )
        for s in overview.shared
    ]
    listed = {row.connection.link for row in shared}
    rest = [
        Row(
            o.connection,
            o.status,
            # Anyone may connect their own account to a shared connection (§5 `connect`).
            can_connect=o.connection.login_user_credentials,
            owner_connected=o.status == CONNECTED,
            status_label="Owner's status",
        )
        for link, o in others.items()
        if link not in listed
    ]
    return mine, shared, rest


async def _published_for(ctx: Context, user: CliqUser, listed: set[str]) -> Connection | None:
    """The published connection, when the user can connect it but it is in neither list yet."""
    conn = await ctx.connections.published()
    if conn is None or conn.link in listed:
        return None
    return conn if conn.login_user_credentials or conn.owner_id == user.id else None


async def _render(
    request: web.Request,
    signed: Signed,
    *,
    notice: str = "",
    problem: Problem | None = None,
    status: int = 200,
) -> web.Response:
    ctx, service, settings = _context(request), _service(request), request.app[SETTINGS]
    user = signed.user
    mine, shared, others = await _rows(ctx, user)
    admin = ctx.is_admin(user)
    values: dict[str, Any] = {
        "user": user,
        "admin": admin,
        "csrf": signed.session.csrf,
        "notice": notice,
        "problem": problem or Problem("", "", ""),
        "mine": mine,
        "shared": shared,
        "others": others,
        "published": await _published_for(ctx, user, {r.connection.link for r in mine + shared}),
        "files": await service.files(user.id),
        "template_file": _BLANK_FILE,
        "kept_ttl": durations.words(settings.kept_file_ttl),
        "session_ends": signed.session.expires_at,
        "command": settings.command_name,
    }
    if admin:
        values.update(await _admin_values(ctx, service, problem))
    html = request.app[TEMPLATES].get_template("connections.html").render(values)
    return web.Response(
        text=html, status=status, content_type="text/html", charset="utf-8", headers=_HEADERS
    )


async def _admin_values(
    ctx: Context, service: PageService, problem: Problem | None
) -> dict[str, Any]:
    services = await ctx.catalog.all()
    chosen: set[str] = set()
    if problem is not None and problem.form == "create":
        picked = problem.values.get("service", "")
        chosen = set(problem.values.get(f"scope:{picked}", "").split(", "))
    return {
        "services": services,
        "services_options": [
            (s.name, f"{s.name} ({'default' if s.default else 'custom'})") for s in services
        ],
        "chosen_scopes": chosen,
        "service_fields": SERVICE_FIELDS,
        "audit": await service.audit(),
    }


@dataclass(frozen=True)
class _TemplateFile:
    """The blank file row the page's script copies for a file that appears while it is open."""

    id: str = ""
    name: str = ""
    state: str = "queued"
    label: str = ""
    done: int = 0
    size: int | None = None
    percent: int | None = None
    in_flight: bool = True
    kept_until: datetime | None = None
    error: str = ""


_BLANK_FILE = _TemplateFile()


@routes.get(PAGE)
async def connections(request: web.Request) -> web.StreamResponse:
    signed = await _signed_in(request)
    if signed is None:
        return _sign_in_needed(request)
    notice = await _service(request).take_notice(signed.id) if signed.session.flash else ""
    return await _render(request, signed, notice=notice)


@routes.get(f"{PAGE}/files.json")
async def files_json(request: web.Request) -> web.StreamResponse:
    signed = await _signed_in(request)
    if signed is None:
        return web.json_response({"error": "not signed in"}, status=401, headers=_HEADERS)
    views = await _service(request).files(signed.user.id)
    return web.json_response({"files": [_file_json(v) for v in views]}, headers=_HEADERS)


def _file_json(view: FileView) -> dict[str, object]:
    data = view.to_json()
    data["kept_until"] = _when(view.kept_until) if view.kept_until is not None else ""
    data["error"] = view.error
    return data


# -- changes -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    """A change being made: who asks, in which context, with what the form sent."""

    ctx: Context
    user: CliqUser
    form: Mapping[str, tuple[str, ...]]  # every value of each field, in order

    def get(self, name: str) -> str:
        values = self.form.get(name, ())
        return values[0].strip() if values else ""

    def every(self, name: str) -> list[str]:
        return [v.strip() for v in self.form.get(name, ()) if v.strip()]

    def link(self) -> str:
        return self.get("link")


Outcome: TypeAlias = "str | web.StreamResponse"
ActionFn: TypeAlias = Callable[[Act], Awaitable[Outcome]]
#: ``(field, words)``: an error whose text has one of ``words`` concerns ``field``; in order.
Fields: TypeAlias = tuple[tuple[str, tuple[str, ...]], ...]

_STATUS: tuple[tuple[type[ChatError], int], ...] = (
    (UsageError, 400),
    (NotAllowed, 403),
    (NotFound, 404),
    (Conflict, 409),
)


def _status(err: ChatError) -> int:
    return next((status for kind, status in _STATUS if isinstance(err, kind)), 400)


def _field_of(err: ChatError, fields: Fields) -> str:
    message = str(err).lower()
    return next((name for name, words in fields if any(w in message for w in words)), "")


def action(
    path: str, form_id: str | Callable[[Act], str], *, fields: Fields = (), section: str = ""
) -> Callable[[ActionFn], ActionFn]:
    """Register ``POST {PAGE}/{path}``: signed in, CSRF checked, then ``fn``. A notice it
    returns is shown once on the page it redirects to; a ``ChatError`` is shown next to
    ``fields`` (or the whole form, ``form_id``) on the page answered with the error's status."""

    def register(fn: ActionFn) -> ActionFn:
        @functools.wraps(fn)
        async def handler(request: web.Request) -> web.StreamResponse:
            signed = await _signed_in(request)
            if signed is None:
                return _sign_in_needed(request)
            posted = await request.post()
            form: dict[str, tuple[str, ...]] = {}
            for key, value in posted.items():
                if isinstance(value, str):
                    form[key] = (*form.get(key, ()), value)
            if not _service(request).csrf_ok(signed.session, "".join(form.pop("csrf", ()))):
                return _forbidden(request, signed)
            act = Act(_context(request), signed.user, form)
            # What was typed is shown again with the error, except secrets.
            values = {key: ", ".join(v) for key, v in form.items() if "secret" not in key}
            try:
                outcome = await fn(act)
            except ChatError as err:
                where = form_id(act) if callable(form_id) else form_id
                problem = Problem(where, _field_of(err, fields), str(err), values)
                return await _render(request, signed, problem=problem, status=_status(err))
            if isinstance(outcome, web.StreamResponse):
                return outcome
            await _service(request).notice(signed.id, outcome)
            anchor = f"#{section}" if section else ""
            return web.Response(status=303, headers={**_HEADERS, "Location": PAGE + anchor})

        routes.post(f"{PAGE}/{path}")(handler)
        return fn

    return register


def _row_form(act: Act) -> str:
    return f"row-{act.link()}"


# -- what every user does --


@action("connect", _row_form, section="mine")
async def connect(act: Act) -> Outcome:
    conn = await act.ctx.connections.require(act.link())
    url = await act.ctx.admin.connect_url(act.user, conn)
    return web.Response(status=303, headers={**_HEADERS, "Location": url})


@action("disconnect", _row_form, section="mine")
async def disconnect(act: Act) -> Outcome:
    conn = await act.ctx.connections.require(act.link())
    outcome = await act.ctx.admin.disconnect(act.user, conn)
    if not outcome.had_authorization:
        return f"You were not connected to `{conn.link}`."
    return f"Disconnected your account from `{conn.link}`."


@action("files/retry", "files", section="files")
async def retry(act: Act) -> Outcome:
    return await act.ctx.files.retry(act.user.id, act.get("job"))


@action("files/cancel", "files", section="files")
async def cancel(act: Act) -> Outcome:
    return await act.ctx.files.cancel(act.user.id, act.get("job"))


# -- what admins do (ConnectionAdmin refuses everyone else, and nothing changes) --

_CREATE_FIELDS: Fields = (
    ("scopes", ("scope", "offer")),
    ("service", ("service",)),
    ("name", ("name",)),
)
_EDIT_FIELDS: Fields = (
    ("scopes", ("scope", "offer")),
    ("login_user_credentials", ("switch", "credentials")),
    ("name", ("name=",)),
)
#: The options of a custom service (CONTRACT §5 ``service add``) in the order of the form:
#: ``(option, label, hint)``.
SERVICE_FIELDS = (
    ("authorize_url", "Authorize URL", "https://…/authorize"),
    ("token_url", "Token URL", ""),
    ("client_id", "Client id", ""),
    ("client_secret", "Client secret", "Stored sealed; never shown again."),
    ("refresh_url", "Refresh URL", "Optional: the token URL when empty."),
    ("revoke_url", "Revoke URL", "Optional."),
    ("userinfo_url", "User info URL", "Optional: who connected (the account shown)."),
    ("scopes", "Scopes offered", "Comma-separated; empty: any scope."),
    ("param_type", "How the token is sent", ""),
    ("scope_delimiter", "Scope delimiter", ""),
    ("authorize_params", "Extra authorize parameters", "Optional, e.g. prompt=consent&x=y"),
    ("client_auth", "Client authentication", ""),
)
SERVICE_OPTIONS = tuple(option for option, _, _ in SERVICE_FIELDS)
_SERVICE_FIELDS: Fields = (
    *((option, (option,)) for option in SERVICE_OPTIONS),
    ("name", ("name", "default service")),
)


def _scopes(values: list[str]) -> tuple[str, ...]:
    """Scopes as ``/connection`` reads ``scopes=a,b``: in order, each once."""
    parts = (s.strip() for value in values for s in value.split(","))
    return tuple(dict.fromkeys(s for s in parts if s))


@action("create", "create", fields=_CREATE_FIELDS, section="mine")
async def create(act: Act) -> Outcome:
    service = act.get("service")
    scopes = _scopes([*act.every(f"scope:{service}"), act.get(f"scopes:{service}")])
    conn = await act.ctx.admin.create(
        act.user,
        act.get("name"),
        service=service,
        scopes=scopes,
        login_user_credentials=act.get("login_user_credentials") == "on",
    )
    return (
        f"Created the connection *{conn.name}* with link name `{conn.link}`."
        " Connect your account, then publish it."
    )


@action("edit", lambda act: f"edit-{act.link()}", fields=_EDIT_FIELDS, section="mine")
async def edit(act: Act) -> Outcome:
    conn = await act.ctx.connections.require(act.link())
    name, scopes = act.get("name"), _scopes([act.get("scopes")])
    switch = act.get("login_user_credentials") == "on"
    changed = await act.ctx.admin.change(
        act.user,
        conn.link,
        name=name if name != conn.name else None,
        scopes=scopes if scopes != conn.scopes else None,
        login_user_credentials=switch if switch != conn.login_user_credentials else None,
    )
    return f"Updated `{changed.link}`; the link name stays the same."


@action("publish", _row_form, section="mine")
async def publish(act: Act) -> Outcome:
    published = await act.ctx.admin.publish(act.user, act.link())
    gone = ", ".join(f"`{p}`" for p in published.previous)
    note = f" ({gone} no longer published)" if gone else ""
    return f"Published `{published.connection.link}`{note}: files sent to the bot use it now."


@action("unpublish", _row_form, section="mine")
async def unpublish(act: Act) -> Outcome:
    if not await act.ctx.admin.unpublish(act.user, act.link()):
        return f"`{act.link()}` was not published."
    return f"Unpublished `{act.link()}`."


@action("revoke", _row_form, section="mine")
async def revoke(act: Act) -> Outcome:
    outcome = await act.ctx.admin.revoke(act.user, act.link())
    if not outcome.had_authorization:
        return f"`{act.link()}` was not connected; its status is `disconnected`."
    return f"Revoked `{act.link()}`; its status is `disconnected`."


@action("delete", _row_form, section="mine")
async def delete(act: Act) -> Outcome:
    await act.ctx.admin.delete(act.user, act.link())
    return f"Deleted `{act.link()}` and every authorization of it."


@action("services/add", "service-add", fields=_SERVICE_FIELDS, section="services")
async def add_service(act: Act) -> Outcome:
    options = {option: act.get(option) for option in SERVICE_OPTIONS if act.get(option)}
    info = await act.ctx.admin.add_service(act.user, act.get("name"), options)
    return f"Added the custom service `{info.name}`."


_CONFIGURE_FIELDS: Fields = (
    ("client_id", ("client_id",)),
    ("client_secret", ("client_secret",)),
)


@action(
    "services/configure",
    lambda act: f"configure-{act.get('name')}",
    fields=_CONFIGURE_FIELDS,
    section="services",
)
async def configure_service(act: Act) -> Outcome:
    client = {"client_id": act.get("client_id"), "client_secret": act.get("client_secret")}
    info = await act.ctx.admin.configure_service(act.user, act.get("name"), client)
    return f"Configured the default service `{info.name}` with your OAuth client."


@action("services/remove", lambda act: f"service-{act.get('name')}", section="services")
async def remove_service(act: Act) -> Outcome:
    info = await act.ctx.admin.remove_service(act.user, act.get("name"))
    return f"Removed the custom service `{info.name}`."
