"""The slash command ``/connection`` (CONTRACT §5): services and connections from chat."""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from bot import durations
from bot.cliq.events import CliqUser, Event
from bot.cliq.messages import Button, Message, Slide, text
from bot.context import Context, RevokeOutcome
from bot.errors import Conflict, NotAllowed, UsageError
from bot.router import Router
from storage.records import CONNECTED, Connection, link_name

router = Router("commands")

USAGE = """\
Usage: /{cmd} <subcommand> …
  help · services · list · status [LINK]
  connect LINK · disconnect [LINK]
Admins:
  service add NAME authorize_url=U token_url=U client_id=X client_secret=Y [refresh_url=U] \
[revoke_url=U] [scopes=a,b] [param_type=header|query] [scope_delimiter=space|comma|plus] \
[userinfo_url=U]
  service remove NAME
  create NAME service=S scopes=a,b [login_user_credentials=on|off]
  set LINK [name=N] [scopes=a,b] [login_user_credentials=on|off]
  publish LINK · unpublish LINK · revoke LINK · delete LINK
Quote names with spaces: create "Team Dropbox" service=dropbox scopes=files.content.write"""

SERVICE_OPTIONS = frozenset(
    {
        "authorize_url",
        "token_url",
        "client_id",
        "client_secret",
        "refresh_url",
        "revoke_url",
        "scopes",
        "param_type",
        "scope_delimiter",
        "userinfo_url",
    }
)


@dataclass
class Args:
    words: list[str]
    options: dict[str, str] = field(default_factory=dict)


def parse_arguments(line: str) -> Args:
    """Split like a shell line; ``key=value`` words are options. Raises ``UsageError``."""
    try:
        parts = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"I could not read that command: {exc}.") from None
    args = Args(words=[])
    for part in parts:
        key, sep, value = part.partition("=")
        if sep and key and key.replace("_", "").isalnum():
            if key.lower() in args.options:
                raise UsageError(f"`{key}` is given twice.")
            args.options[key.lower()] = value
        else:
            args.words.append(part)
    return args


def _usage(ctx: Context) -> str:
    return USAGE.format(cmd=ctx.settings.command_name)


def _allow_only(args: Args, allowed: set[str] | frozenset[str], ctx: Context) -> None:
    unknown = sorted(set(args.options) - set(allowed))
    if unknown:
        raise UsageError(f"Unknown option(s): {', '.join(unknown)}.", _usage(ctx))


def _switch(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("on", "true", "yes"):
        return True
    if lowered in ("off", "false", "no"):
        return False
    raise UsageError(f"login_user_credentials must be on or off, not `{value}`.")


def _scopes(value: str) -> tuple[str, ...]:
    scopes = tuple(dict.fromkeys(s.strip() for s in value.split(",") if s.strip()))
    if not scopes:
        raise UsageError("scopes must name at least one scope, e.g. scopes=files.content.write")
    return scopes


def _require_admin(ctx: Context, user: CliqUser) -> None:
    if not ctx.is_admin(user):
        raise NotAllowed("Only admins can do that; nothing was changed.")


def _one_word(args: Args, what: str, ctx: Context) -> str:
    if len(args.words) != 1:
        raise UsageError(f"Name one {what}.", _usage(ctx))
    return args.words[0]


async def _owner_status(ctx: Context, conn: Connection) -> str:
    auth = await ctx.authorizations.get(conn.link, conn.owner_id)
    if auth is None:
        return "not connected"
    return "connected" if auth.status == CONNECTED else auth.status


async def _check_scopes(ctx: Context, service: str, scopes: Sequence[str]) -> None:
    info = await ctx.services.info(service)
    if info is None:
        raise UsageError(f"There is no service `{service}`. `services` lists them.")
    if info.scopes:
        unknown = [s for s in scopes if s not in info.scopes]
        if unknown:
            raise UsageError(
                f"`{service}` does not offer {', '.join(unknown)}."
                f" It offers: {', '.join(info.scopes)}."
            )


async def connect_prompt(ctx: Context, conn: Connection, user: CliqUser, intro: str) -> Message:
    url = await ctx.accounts.connect_url(conn, user)
    ttl = durations.words(ctx.settings.connect_link_ttl)
    return Message(
        text=f"{intro}\nThe link works once and for {ttl}.",
        card_title=f"Connect {conn.name}",
        buttons=(Button.open_url("Connect", url),),
    )


SubHandler = Callable[[Event, Args, Context], Awaitable[Message]]
_SUBCOMMANDS: dict[str, SubHandler] = {}


def subcommand(name: str) -> Callable[[SubHandler], SubHandler]:
    def register(fn: SubHandler) -> SubHandler:
        _SUBCOMMANDS[name] = fn
        return fn

    return register


@router.command()
async def connection_command(event: Event, ctx: Context) -> Message:
    args = parse_arguments(event.arguments)
    if not args.words:
        return text(_usage(ctx))
    name = args.words.pop(0).lower()
    handler = _SUBCOMMANDS.get(name)
    if handler is None:
        raise UsageError(f"Unknown subcommand `{name}`.", _usage(ctx))
    return await handler(event, args, ctx)


@subcommand("help")
async def help_(event: Event, args: Args, ctx: Context) -> Message:
    return text(_usage(ctx))


@subcommand("services")
async def services(event: Event, args: Args, ctx: Context) -> Message:
    rows = [
        {
            "Service": s.name,
            "Kind": "default" if s.default else "custom",
            "Scopes": ", ".join(s.scopes) or "(any)",
        }
        for s in await ctx.services.all()
    ]
    return Message(
        text=f"{len(rows)} service(s).",
        card_title="Services",
        slides=(
            Slide("table", "Services", {"headers": ["Service", "Kind", "Scopes"], "rows": rows}),
        ),
    )


@subcommand("service")
async def service(event: Event, args: Args, ctx: Context) -> Message:
    if len(args.words) < 2 or args.words[0].lower() not in ("add", "remove"):
        raise UsageError("Use `service add NAME …` or `service remove NAME`.", _usage(ctx))
    action, name = args.words[0].lower(), args.words[1]
    if len(args.words) > 2:
        raise UsageError("Quote a service name that has spaces.", _usage(ctx))
    _require_admin(ctx, event.user)
    if action == "add":
        _allow_only(args, SERVICE_OPTIONS, ctx)
        info = await ctx.services.add_custom(name, args.options, event.user.id)
        await ctx.audit.record(event.user.id, event.user.email, "service.add", info.name)
        return text(
            f"Added the custom service `{info.name}` (scopes: {', '.join(info.scopes) or 'any'})."
        )
    _allow_only(args, set(), ctx)
    found = await ctx.services.info(name)
    if found is None:
        raise UsageError(f"There is no service `{name}`.")
    info = found
    if info.default:
        raise Conflict(f"`{info.name}` is a default service and cannot be removed.")
    users = await ctx.connections.using_service(info.name)
    if users:
        raise Conflict(
            f"`{info.name}` is used by {', '.join(f'`{u}`' for u in users)}; delete those first."
        )
    await ctx.services.remove_custom(info.name)
    await ctx.audit.record(event.user.id, event.user.email, "service.remove", info.name)
    return text(f"Removed the custom service `{info.name}`.")


@subcommand("create")
async def create(event: Event, args: Args, ctx: Context) -> Message:
    if len(args.words) != 1:
        raise UsageError("Name one connection (quote names with spaces).", _usage(ctx))
    _allow_only(args, {"service", "scopes", "login_user_credentials"}, ctx)
    _require_admin(ctx, event.user)
    name = args.words[0].strip()
    link = link_name(name)
    if not link:
        raise UsageError("The name needs at least one letter or digit.")
    service_name = args.options.get("service", "").lower()
    if not service_name:
        raise UsageError("Say which service: service=dropbox.", _usage(ctx))
    if "scopes" not in args.options:
        raise UsageError("Say which scopes: scopes=a,b.", _usage(ctx))
    scopes = _scopes(args.options["scopes"])
    await _check_scopes(ctx, service_name, scopes)
    switch = _switch(args.options.get("login_user_credentials", "on"))
    conn = Connection(
        link=link,
        name=name,
        service=service_name,
        scopes=scopes,
        login_user_credentials=switch,
        owner_id=event.user.id,
        owner_email=event.user.email,
    )
    await ctx.connections.create(conn)
    await ctx.audit.record(
        event.user.id,
        event.user.email,
        "connection.create",
        link,
        service=service_name,
        scopes=list(scopes),
        login_user_credentials=switch,
    )
    mode = (
        "each user connects their own account" if switch else "it runs on your account for everyone"
    )
    return await connect_prompt(
        ctx,
        conn,
        event.user,
        f"Created the connection *{name}* with link name `{link}` ({mode}).\n"
        f"Connect your account, then `publish {link}`.",
    )


@subcommand("set")
async def set_(event: Event, args: Args, ctx: Context) -> Message:
    link = _one_word(args, "connection link name", ctx)
    _allow_only(args, {"name", "scopes", "login_user_credentials"}, ctx)
    if not args.options:
        raise UsageError("Say what to change: name=, scopes= or login_user_credentials=.")
    _require_admin(ctx, event.user)
    conn = await ctx.connections.require(link)
    if await _owner_status(ctx, conn) == "connected":
        raise Conflict(f"`{link}` is connected; revoke it first (`revoke {link}`), then change it.")
    changes: dict[str, object] = {}
    if "name" in args.options:
        new_name = args.options["name"].strip()
        if not new_name:
            raise UsageError("name= cannot be empty.")
        changes["name"] = new_name
    if "scopes" in args.options:
        scopes = _scopes(args.options["scopes"])
        await _check_scopes(ctx, conn.service, scopes)
        changes["scopes"] = list(scopes)
    if "login_user_credentials" in args.options:
        switch = _switch(args.options["login_user_credentials"])
        if conn.published and not switch and await _owner_status(ctx, conn) != "connected":
            raise Conflict(
                "A published connection cannot switch to the owner's credentials"
                " while the owner is not connected."
            )
        changes["login_user_credentials"] = switch
    updated = await ctx.connections.update(link, changes)
    await ctx.audit.record(event.user.id, event.user.email, "connection.set", link, **changes)
    return text(
        f"Updated `{link}`: name *{updated.name}*, scopes {', '.join(updated.scopes)},"
        f" use credentials of login user {'on' if updated.login_user_credentials else 'off'}."
        " The link name stays the same."
    )


@subcommand("connect")
async def connect(event: Event, args: Args, ctx: Context) -> Message:
    _allow_only(args, set(), ctx)
    link = args.words[0] if args.words else ""
    conn = await ctx.connections.require(link) if link else await _published_or_fail(ctx)
    user = event.user
    if user.id != conn.owner_id and not conn.login_user_credentials:
        raise Conflict(
            f"`{conn.link}` runs on its owner's account for everyone; only the owner connects it."
        )
    whose = "your account" if user.id != conn.owner_id else "the connection's account (yours)"
    return await connect_prompt(ctx, conn, user, f"Connect {whose} to *{conn.name}*.")


async def _published_or_fail(ctx: Context) -> Connection:
    conn = await ctx.connections.published()
    if conn is None:
        raise UsageError("No connection is published yet; name one.")
    return conn


@subcommand("publish")
async def publish(event: Event, args: Args, ctx: Context) -> Message:
    link = _one_word(args, "connection link name", ctx)
    _allow_only(args, set(), ctx)
    _require_admin(ctx, event.user)
    conn = await ctx.connections.require(link)
    info = await ctx.services.info(conn.service)
    if info is None or not info.receives_files:
        raise Conflict(
            f"`{link}` uses the service `{conn.service}`, which cannot receive files:"
            " only a Dropbox connection can be published as the bot's upload connection."
            " Nothing was changed."
        )
    if not conn.login_user_credentials and await _owner_status(ctx, conn) != "connected":
        raise Conflict(
            f"`{link}` runs on the owner's account, and the owner is not connected:"
            f" the owner runs `connect {link}` first."
        )
    previous = await ctx.connections.publish(link)
    await ctx.audit.record(event.user.id, event.user.email, "connection.publish", link)
    note = f" (`{'`, `'.join(previous)}` is no longer published)" if previous else ""
    whose = "each sender's own account" if conn.login_user_credentials else "the owner's account"
    return text(f"Published `{link}`{note}. Files sent to the bot now go to {whose}.")


@subcommand("unpublish")
async def unpublish(event: Event, args: Args, ctx: Context) -> Message:
    link = _one_word(args, "connection link name", ctx)
    _allow_only(args, set(), ctx)
    _require_admin(ctx, event.user)
    conn = await ctx.connections.require(link)
    if not conn.published:
        return text(f"`{link}` is not published.")
    await ctx.connections.update(link, {"published": False})
    await ctx.audit.record(event.user.id, event.user.email, "connection.unpublish", link)
    return text(f"Unpublished `{link}`. The bot keeps no new files until one is published.")


@subcommand("revoke")
async def revoke(event: Event, args: Args, ctx: Context) -> Message:
    link = _one_word(args, "connection link name", ctx)
    _allow_only(args, set(), ctx)
    conn = await ctx.connections.require(link)
    if event.user.id != conn.owner_id and not ctx.is_admin(event.user):
        raise NotAllowed("Only the connection's owner or an admin can revoke it; nothing changed.")
    outcome = await ctx.accounts.revoke(conn, conn.owner_id, forget=False)
    await ctx.audit.record(event.user.id, event.user.email, "connection.revoke", link)
    if not outcome.had_authorization:
        return text(f"`{link}` was not connected; its status is `disconnected`.")
    return text(f"Revoked `{link}`; its status is `disconnected`.{_unreachable(outcome)}")


def _unreachable(outcome: RevokeOutcome) -> str:
    if outcome.provider_ok:
        return ""
    return " The service could not be reached to revoke the token there; it was deleted here."


@subcommand("disconnect")
async def disconnect(event: Event, args: Args, ctx: Context) -> Message:
    _allow_only(args, set(), ctx)
    conn = (
        await ctx.connections.require(args.words[0])
        if args.words
        else await _published_or_fail(ctx)
    )
    return await disconnect_user(ctx, conn, event.user)


async def disconnect_user(ctx: Context, conn: Connection, user: CliqUser) -> Message:
    if user.id != conn.owner_id and not conn.login_user_credentials:
        raise Conflict(
            f"`{conn.link}` runs on its owner's account; you have nothing to disconnect."
        )
    outcome = await ctx.accounts.revoke(conn, user.id, forget=True)
    if not outcome.had_authorization:
        return text(f"You are not connected to `{conn.link}`.")
    return text(f"Disconnected your account from `{conn.link}`.{_unreachable(outcome)}")


@subcommand("delete")
async def delete(event: Event, args: Args, ctx: Context) -> Message:
    link = _one_word(args, "connection link name", ctx)
    _allow_only(args, set(), ctx)
    _require_admin(ctx, event.user)
    conn = await ctx.connections.require(link)
    if conn.published:
        raise Conflict(f"`{link}` is published; unpublish first (`unpublish {link}`).")
    for auth in await ctx.authorizations.of_connection(link):
        await ctx.accounts.revoke(conn, auth.user_id, forget=True)
    if not await ctx.connections.delete(link):
        raise Conflict(f"`{link}` was published meanwhile; unpublish first.")
    await ctx.audit.record(event.user.id, event.user.email, "connection.delete", link)
    return text(f"Deleted `{link}` and every authorization of it.")


@subcommand("list")
async def list_(event: Event, args: Args, ctx: Context) -> Message:
    _allow_only(args, set(), ctx)
    user = event.user
    mine = await ctx.connections.owned_by(user.id)
    mine_rows = [
        {
            "Connection": c.name,
            "Link name": c.link,
            "Service": c.service,
            "Status": await _owner_status(ctx, c),
            "Shared": "on" if c.login_user_credentials else "off",
            "Published": "yes" if c.published else "no",
        }
        for c in mine
    ]
    auths = {a.link: a for a in await ctx.authorizations.of_user(user.id)}
    shared = [c for c in await ctx.connections.by_links(list(auths)) if c.owner_id != user.id]
    shared_rows = [
        {
            "Connection": c.name,
            "Link name": c.link,
            "Service": c.service,
            "Status": auths[c.link].status,
            "Account": auths[c.link].account_email or auths[c.link].account_name,
        }
        for c in sorted(shared, key=lambda c: c.link)
    ]
    sections = (
        (
            "My connections",
            ["Connection", "Link name", "Service", "Status", "Shared", "Published"],
            mine_rows,
        ),
        (
            "Shared connections",
            ["Connection", "Link name", "Service", "Status", "Account"],
            shared_rows,
        ),
    )
    lines: list[str] = []
    for title, _, rows in sections:
        lines.append(f"*{title}*")
        lines += [f"- {r['Connection']} (`{r['Link name']}`): {r['Status']}" for r in rows] or [
            "- none"
        ]
    # Tables only where there is something to show; the text lists both either way.
    slides = tuple(Slide.table(title, headers, rows) for title, headers, rows in sections if rows)
    return Message(text="\n".join(lines), card_title="Connections", slides=slides)


@subcommand("status")
async def status(event: Event, args: Args, ctx: Context) -> Message:
    _allow_only(args, set(), ctx)
    if args.words:
        conn = await ctx.connections.require(args.words[0])
    else:
        published = await ctx.connections.published()
        if published is None:
            return text("No connection is published, so the bot keeps no files yet.")
        conn = published
    return await status_message(ctx, conn, event.user)


async def status_message(ctx: Context, conn: Connection, user: CliqUser) -> Message:
    # The owner's own authorization is the connection's status; a user of a shared connection
    # cares about theirs (below), so to them the owner's is noise ("not connected" misleads).
    sees_owner = not conn.login_user_credentials or user.id == conn.owner_id or ctx.is_admin(user)
    owner = f": {await _owner_status(ctx, conn)}" if sees_owner else ""
    lines = [
        f"*{conn.name}* (`{conn.link}`, {conn.service}){owner}"
        f"{', published' if conn.published else ''}.",
        "Use credentials of login user: "
        + (
            "on: each user connects their own account."
            if conn.login_user_credentials
            else "off: everything runs on the owner's account."
        ),
    ]
    if conn.login_user_credentials:
        auth = await ctx.authorizations.get(conn.link, user.id)
        if auth is None:
            lines.append("You: not connected.")
        else:
            account = auth.account_email or auth.account_name
            lines.append(f"You: {auth.status}{f' as {account}' if account else ''}.")
    lines += await ctx.files.status_lines(user.id)
    if ctx.is_admin(user):
        connected = await ctx.authorizations.count_connected(conn.link)
        waiting = await ctx.files.waiting_count(conn.link)
        lines.append(f"Admin: {connected} user(s) connected, {waiting} file(s) waiting.")
    return Message(text="\n".join(lines), card_title="Status")
