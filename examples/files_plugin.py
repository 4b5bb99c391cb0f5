"""An example plugin: the chat word ``files`` lists your last files in the upload folder.

It calls Dropbox's ``/2/files/list_folder`` through ``ctx.invoke`` on the published connection,
so with "use credentials of login user" on, every user sees the files of their *own* Dropbox.
Not connected yet? It lets ``NotAuthorized`` propagate: the bot answers with a Connect button,
keeps the request, and posts this word's answer once the user has connected.

Load it like any plugin, by module name (``cliqbot demo`` does this for you)::

    PYTHONPATH=examples BOT_PLUGINS=files_plugin cliqbot serve

The connection needs the scope ``files.metadata.read`` to list files.
"""

from __future__ import annotations

from typing import Any

from bot.plugin import Context, Event, Message, Router, text

router = Router("files-example")

SHOWN = 10  # the newest this many
MAX_PAGES = 5  # of Dropbox's pages, each up to 2,000 entries


@router.text("files", help="your last files in the upload folder")
async def files(event: Event, ctx: Context) -> Message:
    conn = await ctx.connections.published()
    if conn is None or conn.service != "dropbox":
        return text("No Dropbox connection is published; ask an admin to publish one.")
    api, folder = ctx.settings.dropbox_api_url, ctx.settings.upload_folder
    answer = await ctx.invoke(
        conn.link, event.user, "POST", f"{api}/2/files/list_folder", json={"path": folder}
    )
    entries: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if answer.status == 409 and "not_found" in answer.text():
            return text(f"There is no {folder} folder in your Dropbox yet: send me a file.")
        if answer.status != 200:
            return text(f"Dropbox answered {answer.status}: {answer.text()[:200]}")
        page = answer.json()
        entries += page["entries"]
        if not page["has_more"]:
            break
        answer = await ctx.invoke(
            conn.link,
            event.user,
            "POST",
            f"{api}/2/files/list_folder/continue",
            json={"cursor": page["cursor"]},
        )
    found = [e for e in entries if e[".tag"] == "file"]
    if not found:
        return text(f"{folder} in your Dropbox has no files yet: send me one.")
    newest = sorted(found, key=lambda e: e["server_modified"], reverse=True)[:SHOWN]
    lines = [f"• {e['name']} ({_size(e['size'])}, {e['server_modified']})" for e in newest]
    whose = "your" if conn.login_user_credentials else f"{conn.name}'s"
    return text(f"The last {len(newest)} file(s) in {whose} {folder}:\n" + "\n".join(lines))


def _size(count: int) -> str:
    size, unit = float(count), "bytes"
    for bigger in ("KiB", "MiB", "GiB"):
        if size < 1024:
            break
        size, unit = size / 1024, bigger
    if unit != "bytes":
        return f"{size:.1f} {unit}"
    return "1 byte" if count == 1 else f"{count} bytes"
