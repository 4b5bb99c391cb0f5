"""The Dropbox stand-in's ``files/list_folder`` (and ``/continue``) in Dropbox's wire format,
read back through the official ``dropbox`` SDK's own result models, and through plain HTTP for
the errors."""

# ruff: noqa: F811 (the stand-in fixtures are imported from test_dropbox_standin)

from __future__ import annotations

import asyncio
import pathlib
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from bot.sandbox.dropbox_standin import DropboxStandin
from tests.bot.sandbox.test_dropbox_standin import (  # noqa: F401 (fixtures)
    ANA,
    APP_KEY,
    BEN,
    Client,
    client,
    sdk_client,
    standin,
    tls_standin,
    upload,
)

LIST_SCOPES = ["files.content.write", "files.metadata.read"]


async def _fill(client: Client, token: str, names: list[str]) -> None:
    for name in names:
        resp = await upload(client, token, name, name.encode())
        assert resp.status == 200, await resp.text()


async def _list(client: Client, token: str, route: str, arg: object) -> aiohttp.ClientResponse:
    return await client.post(
        f"/2/files/{route}", json=arg, headers={"Authorization": f"Bearer {token}"}
    )


async def test_the_sdk_lists_a_folder_in_pages(
    tls_standin: tuple[TestServer, pathlib.Path], standin: DropboxStandin, client: Client
) -> None:
    server, ca_path = tls_standin
    assert server.port is not None
    ana = standin.issue_tokens(APP_KEY, ANA, LIST_SCOPES)[0]
    ben = standin.issue_tokens(APP_KEY, BEN, LIST_SCOPES)[0]
    await _fill(client, ana, ["/Up/a.txt", "/Up/b.txt", "/Up/c.txt", "/Up/Sub/d.txt"])
    await _fill(client, ben, ["/Up/ben.txt"])
    dbx = sdk_client(ana, server.port, ca_path)

    def scenario() -> dict[str, Any]:
        from dropbox import exceptions, files

        out: dict[str, Any] = {"pages": [dbx.files_list_folder("/up", limit=2)]}
        while out["pages"][-1].has_more:
            out["pages"].append(dbx.files_list_folder_continue(out["pages"][-1].cursor))
        out["recursive"] = dbx.files_list_folder("/Up", recursive=True)
        for path in ("/Nope", "/Up/a.txt"):
            try:
                dbx.files_list_folder(path)
            except exceptions.ApiError as exc:
                out[path] = exc.error
        out["file_type"] = files.FileMetadata
        out["folder_type"] = files.FolderMetadata
        return out

    out = await asyncio.to_thread(scenario)
    pages = out["pages"]
    assert [len(p.entries) for p in pages] == [2, 2]
    entries = [e for p in pages for e in p.entries]
    assert [e.path_display for e in entries] == ["/Up/a.txt", "/Up/b.txt", "/Up/c.txt", "/Up/Sub"]
    a, sub = entries[0], entries[3]
    assert isinstance(a, out["file_type"]) and isinstance(sub, out["folder_type"])
    assert a.name == "a.txt" and a.size == len(b"/Up/a.txt") and a.content_hash and a.rev
    assert a.server_modified.year >= 2024
    assert sub.name == "Sub" and sub.id.startswith("id:")
    recursive = sorted(e.path_lower for e in out["recursive"].entries)
    assert recursive == ["/up/a.txt", "/up/b.txt", "/up/c.txt", "/up/sub", "/up/sub/d.txt"]
    assert out["/Nope"].is_path() and out["/Nope"].get_path().is_not_found()
    assert out["/Up/a.txt"].get_path().is_not_folder()


async def test_listing_needs_the_metadata_scope_and_a_json_body(
    standin: DropboxStandin, client: Client
) -> None:
    writer = standin.issue_tokens(APP_KEY, ANA, ["files.content.write"])[0]
    resp = await _list(client, writer, "list_folder", {"path": ""})
    assert resp.status == 401
    assert (await resp.json())["error"] == {
        ".tag": "missing_scope",
        "required_scope": "files.metadata.read",
    }
    token = standin.issue_tokens(APP_KEY, ANA, LIST_SCOPES)[0]
    resp = await _list(client, token, "list_folder", {"path": "", "colour": "blue"})
    assert resp.status == 400 and 'unknown field "colour"' in await resp.text()
    resp = await _list(client, token, "list_folder", {"path": "relative"})
    assert resp.status == 400 and "did not match pattern" in await resp.text()
    resp = await _list(client, token, "list_folder/continue", {"cursor": "garbage!"})
    assert resp.status == 400 and "Invalid" in await resp.text()
    resp = await _list(client, token, "list_folder", {"path": ""})
    assert resp.status == 200
    assert await resp.json() == {
        "entries": [],
        "cursor": (await resp.json())["cursor"],
        "has_more": False,
    }
    other = standin.issue_tokens(APP_KEY, BEN, LIST_SCOPES)[0]
    cursor = (await resp.json())["cursor"]
    resp = await _list(client, other, "list_folder/continue", {"cursor": cursor})
    assert resp.status == 409 and (await resp.json())["error"] == {".tag": "reset"}
