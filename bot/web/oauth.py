"""Connect links and the OAuth callback (CONTRACT §8)."""

from __future__ import annotations

import logging

from aiohttp import web

from bot import durations
from bot.errors import ChatError, InvalidState, LinkGone, StoreUnavailable
from bot.keys import RUNTIME, SETTINGS
from bot.web.pages import page

log = logging.getLogger(__name__)

routes = web.RouteTableDef()


@routes.get("/connect/{link_id}")
async def connect(request: web.Request) -> web.StreamResponse:
    accounts = request.app[RUNTIME].components.accounts
    try:
        target = await accounts.begin(request.match_info["link_id"])
    except LinkGone:
        return page(
            "This link has expired",
            "Connect links work once and only for"
            f" {durations.words(request.app[SETTINGS].connect_link_ttl)}."
            " Ask the bot for a new one: send it `connect`.",
            status=410,
        )
    except ChatError as err:
        return page("Cannot connect", str(err), status=409)
    raise web.HTTPFound(target, headers={"Cache-Control": "no-store"})


@routes.get("/oauth/callback")
async def callback(request: web.Request) -> web.StreamResponse:
    accounts = request.app[RUNTIME].components.accounts
    query = request.query
    try:
        result = await accounts.complete(
            query.get("state", ""),
            query.get("code", ""),
            query.get("error", ""),
            query.get("error_description", ""),
            # Zoho sends a user of another data centre back with its accounts server.
            query.get("accounts-server", ""),
        )
    except InvalidState as err:
        return page("This sign-in cannot be used", f"{err} Ask the bot for a new link.", status=400)
    except StoreUnavailable:
        return page("Try again in a minute", "The bot's database is not answering.", status=503)
    return page(result.title, result.body, status=result.status, code=result.code)
