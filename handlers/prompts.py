"""Replies more than one feature gives: a connect prompt, a connection's status, disconnecting."""

from __future__ import annotations

from bot import durations
from bot.cliq.events import CliqUser
from bot.cliq.messages import Button, Message, text
from bot.context import Context, RevokeOutcome
from storage.records import Connection

__all__ = ["connect_prompt", "disconnect_user", "status_message", "unreachable_note"]


async def connect_prompt(ctx: Context, conn: Connection, user: CliqUser, intro: str) -> Message:
    """``intro`` and a button to a single-use connect link for ``user`` (CONTRACT §4)."""
    url = await ctx.accounts.connect_url(conn, user)
    ttl = durations.words(ctx.settings.connect_link_ttl)
    return Message(
        text=f"{intro}\nThe link works once and for {ttl}.",
        card_title=f"Connect {conn.name}",
        buttons=(Button.open_url("Connect", url),),
    )


def unreachable_note(outcome: RevokeOutcome) -> str:
    if outcome.provider_ok:
        return ""
    return " The service could not be reached to revoke the token there; it was deleted here."


async def disconnect_user(ctx: Context, conn: Connection, user: CliqUser) -> Message:
    outcome = await ctx.admin.disconnect(user, conn)
    if not outcome.had_authorization:
        return text(f"You are not connected to `{conn.link}`.")
    return text(f"Disconnected your account from `{conn.link}`.{unreachable_note(outcome)}")


async def status_message(ctx: Context, conn: Connection, user: CliqUser) -> Message:
    # The owner's own authorization is the connection's status; a user of a shared connection
    # cares about theirs (below), so to them the owner's is noise ("not connected" misleads).
    sees_owner = not conn.login_user_credentials or user.id == conn.owner_id or ctx.is_admin(user)
    owner = f": {await ctx.admin.owner_status(conn)}" if sees_owner else ""
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
