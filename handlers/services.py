"""``/connection services`` and ``service add|remove`` (CONTRACT §5): the service catalogue."""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message, Slide, text
from bot.context import Context
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
    }
)

SERVICE_ADD = (
    "service add NAME authorize_url=U token_url=U client_id=X client_secret=Y [refresh_url=U]"
    " [revoke_url=U] [scopes=a,b] [param_type=header|query] [scope_delimiter=space|comma|plus]"
    " [userinfo_url=U]"
)


@connection.subcommand("services", summary="The services a connection can use")
async def services(event: Event, ctx: Context) -> Message:
    rows = [
        {
            "Service": s.name,
            "Kind": "default" if s.default else "custom",
            "Scopes": ", ".join(s.scopes) or "(any)",
        }
        for s in await ctx.catalog.all()
    ]
    return Message(
        text=f"{len(rows)} service(s).",
        card_title="Services",
        slides=(
            Slide("table", "Services", {"headers": ["Service", "Kind", "Scopes"], "rows": rows}),
        ),
    )


@connection.subcommand(
    "service",
    usage=(SERVICE_ADD, "service remove NAME"),
    summary="Add or remove a custom service",
    admin=True,
)
async def service(event: Event, ctx: Context) -> Message:
    args = parse_arguments(event.arguments)
    if len(args.words) < 2 or args.words[0].lower() not in ("add", "remove"):
        raise UsageError("Use `service add NAME …` or `service remove NAME`.")
    action, name = args.words[0].lower(), args.words[1]
    if len(args.words) > 2:
        raise UsageError("Quote a service name that has spaces.")
    if action == "add":
        allow_only(args, SERVICE_OPTIONS)
        info = await ctx.admin.add_service(event.user, name, args.options)
        return text(
            f"Added the custom service `{info.name}` (scopes: {', '.join(info.scopes) or 'any'})."
        )
    allow_only(args)
    info = await ctx.admin.remove_service(event.user, name)
    return text(f"Removed the custom service `{info.name}`.")
