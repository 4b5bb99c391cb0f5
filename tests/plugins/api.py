"""A test plugin: ``fetch LINK URL [TIMEOUT]`` calls URL through ``ctx.invoke`` on LINK.

It lets ``NotAuthorized`` propagate (the bot answers with a connect prompt and keeps the event),
and answers ``STATUS BODY`` (the body cut to 400 characters). ``runs`` counts its runs by event
identity, so a test sees that a kept event ran again exactly once.
"""

from __future__ import annotations

from collections import Counter

from bot.plugin import Context, Event, Message, Router, text

router = Router("test-api")

runs: Counter[str] = Counter()


@router.text("fetch", help="call a URL through a connection (tests)")
async def fetch(event: Event, ctx: Context) -> Message:
    runs[event.identity] += 1
    _, link, url, *rest = event.text.split()
    timeout = float(rest[0]) if rest else 40.0
    answer = await ctx.invoke(link, event.user, "GET", url, timeout=timeout)
    return text(f"{answer.status} {answer.text()[:400]}")
