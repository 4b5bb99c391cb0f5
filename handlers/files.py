"""Files sent or forwarded to the bot (CONTRACT §7): one outcome per attachment.

Nothing here writes: on the acknowledgement path ``ctx.files.accept`` stages each attachment's
job, and the webhook writes them all, each carrying the reply this handler returns, as the
delivery's one durable write (``bot/files/intake.py``, ``storage/events.py``). The reads —
the published connection, the credential owner's authorization — come from memory, at most
1 s old (``bot/cache.py``).
"""

from __future__ import annotations

from bot.cliq.events import Event
from bot.cliq.messages import Message, text
from bot.context import Context
from bot.router import Router
from handlers.prompts import connect_prompt

router = Router("files")


@router.message(attachments=True)
async def files(event: Event, ctx: Context) -> Message:
    conn = await ctx.connections.published()
    if conn is None:
        return text(
            "No connection is published, so I cannot save files yet; nothing was stored."
            " Ask an admin to publish one."
        )
    credential_user = ctx.credential_user(conn, event.user.id)
    lines: list[str] = []
    needs_connect = False
    for attachment in event.attachments:
        outcome = await ctx.files.accept(event, attachment, conn, credential_user)
        lines.append(outcome.line)
        needs_connect = needs_connect or outcome.needs_connect
    body = "\n".join(lines)
    if not needs_connect:
        return text(body)
    if credential_user != event.user.id:
        return text(body + "\nThe connection's owner has to connect it; I will upload then.")
    return await connect_prompt(
        ctx,
        conn,
        event.user,
        body + "\nConnect your account and I upload what I kept, in order.",
    )
