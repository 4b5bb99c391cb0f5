"""``/connection services`` and ``service add|configure|remove`` (CONTRACT §5): the service
catalogue — Dropbox, the default services (§10) and custom OAuth2 services."""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message, Slide, text
from bot.context import Context, ServiceInfo
from bot.errors import UsageError
from bot.router import BOT_COMMAND, Router
from handlers.arguments import allow_only, parse_arguments

router = Router("services")
connection = router.command(BOT_COMMAND)

#: The options of ``service add``; the catalogue checks their values.
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
        "authorize_params",
        "client_auth",
    }
)
CONFIGURE_OPTIONS = frozenset({"client_id", "client_secret"})

SERVICE_ADD = (
    "service add NAME authorize_url=U token_url=U client_id=X client_secret=Y [refresh_url=U]"
    " [revoke_url=U] [scopes=a,b] [param_type=header|query] [scope_delimiter=space|comma|plus]"
    " [userinfo_url=U] [authorize_params=k=v&k2=v2] [client_auth=basic|post]"
)
SERVICE_CONFIGURE = "service configure NAME client_id=X client_secret=Y"
_ACTIONS = ("add", "configure", "remove")


def _scopes(info: ServiceInfo) -> str:
    listed = ", ".join(info.scopes) or "any"
    if info.default_scopes:
        listed += f" (always asks for {', '.join(info.default_scopes)})"
    return listed


def _status(info: ServiceInfo) -> str:
    status = f"not configured: {info.missing}" if info.missing else "ready"
    return f"{status}; {info.note}" if info.note else status


@connection.subcommand("services", summary="The services a connection can use")
async def services(event: Event, ctx: Context) -> Message:
    found = await ctx.catalog.all()
    rows = [
        {
            "Service": s.name,
            "Kind": "default" if s.default else "custom",
            "Scopes": _scopes(s),
            "Status": _status(s),
        }
        for s in found
    ]
    ready = sum(1 for s in found if not s.missing)
    return Message(
        text=f"{len(rows)} service(s), {ready} ready to connect.",
        card_title="Services",
        slides=(
            Slide(
                "table",
                "Services",
                {"headers": ["Service", "Kind", "Scopes", "Status"], "rows": rows},
            ),
        ),
    )


@connection.subcommand(
    "service",
    usage=(SERVICE_ADD, SERVICE_CONFIGURE, "service remove NAME"),
    summary="Add or remove a custom service, or enable a default one",
    admin=True,
)
async def service(event: Event, ctx: Context) -> Message:
    args = parse_arguments(event.arguments)
    if len(args.words) < 2 or args.words[0].lower() not in _ACTIONS:
        raise UsageError(
            "Use `service add NAME …`, `service configure NAME …` or `service remove NAME`."
        )
    action, name = args.words[0].lower(), args.words[1]
    if len(args.words) > 2:
        raise UsageError("Quote a service name that has spaces.")
    if action == "add":
        allow_only(args, SERVICE_OPTIONS)
        info = await ctx.admin.add_service(event.user, name, args.options)
        return text(
            f"Added the custom service `{info.name}` (scopes: {', '.join(info.scopes) or 'any'})."
        )
    if action == "configure":
        allow_only(args, CONFIGURE_OPTIONS)
        info = await ctx.admin.configure_service(event.user, name, args.options)
        return text(
            f"Enabled the default service `{info.name}` with your OAuth client; connections can"
            f" use it now: `create NAME service={info.name} scopes=…`."
        )
    allow_only(args)
    info = await ctx.admin.remove_service(event.user, name)
    return text(f"Removed the custom service `{info.name}`.")
