"""``/connection sample LINK`` (CONTRACT §5, §10): the snippet runs as a plugin, as shown.

The snippet the bot replies with is saved as a module and loaded through ``BOT_PLUGINS`` into a
second app on the same database: its word then calls Dropbox (the stand-in) as the user.
"""

from __future__ import annotations

import dataclasses
import json
import re
import uuid
from pathlib import Path
from typing import Any

import pytest

from bot.app import create_app
from bot.keys import RUNTIME
from bot.sandbox.driver import ChatDriver
from tests.conftest import ADMIN, ANA, WEBHOOK_SECRET, World

PYTHON = re.compile(r"```python\n(.*?)```", re.DOTALL)
JSON = re.compile(r"```json\n(.*?)```", re.DOTALL)


def _parts(reply_text: str) -> tuple[str, dict[str, Any]]:
    code, view = PYTHON.search(reply_text), JSON.search(reply_text)
    assert code and view, reply_text
    return code.group(1), json.loads(view.group(1))


async def test_the_sample_runs_as_a_plugin_on_the_users_own_account(
    world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, aiohttp_server: Any
) -> None:
    await world.setup_connection(switch="on")
    await world.connect(ANA, "ana@dropbox.example")
    reply = await world.chat.run(ANA, "sample team_dropbox")
    code, view = _parts(reply.text)
    assert view == {
        "name": "Team Dropbox",
        "link_name": "team_dropbox",
        "service": "dropbox",
        "scopes": ["account_info.read", "files.content.write"],
        "login_user_credentials": True,
        "published": True,
        "param_type": "header",
    }
    assert '"team_dropbox",' in code and "event.user" in code
    assert f'"{world.settings.dropbox_api_url}/2/users/get_current_account"' in code
    assert "`try_team_dropbox`" in reply.text and "each user's own account" in reply.text
    assert "test-app-secret" not in reply.text

    module = f"sample_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(code)
    monkeypatch.syspath_prepend(str(tmp_path))
    second = create_app(dataclasses.replace(world.settings, plugins=(module,)))
    server = await aiohttp_server(second)
    url = str(server.make_url("")).rstrip("/")
    second[RUNTIME].public_url = url
    chat = ChatDriver(world.chat.http, url, WEBHOOK_SECRET)
    ran = await chat.say(ANA, "try_team_dropbox")
    status, _, body = ran.text.partition(": ")
    assert status == "200", ran.text
    assert '"email": "ana@dropbox.example"' in body  # the sample shows 500 characters


async def test_a_custom_services_sample_shows_how_its_token_travels(world: World) -> None:
    reply = await world.chat.run(
        ADMIN,
        "service add acme authorize_url=https://acme.example/authorize"
        " token_url=https://acme.example/token client_id=acme client_secret=acme-s3cret"
        " userinfo_url=https://acme.example/me param_type=query scope_delimiter=space",
    )
    assert "Added" in reply.text, reply.text
    reply = await world.chat.run(
        ADMIN, 'create "Acme Owner" service=acme scopes=read login_user_credentials=off'
    )
    assert "acme_owner" in reply.text, reply.text
    reply = await world.chat.run(ANA, "sample acme_owner")  # any user may ask
    code, view = _parts(reply.text)
    assert view["param_type"] == "query" and view["login_user_credentials"] is False
    assert view["published"] is False and view["scopes"] == ["read"]
    assert '"GET",' in code and '"https://acme.example/me",' in code
    assert "the owner's account" in reply.text
    compile(code, "sample.py", "exec")  # valid Python
    assert "acme-s3cret" not in reply.text


async def test_sample_needs_a_known_link(world: World) -> None:
    reply = await world.chat.run(ANA, "sample")
    assert "Name one connection link name" in reply.text and "sample LINK" in reply.text
    reply = await world.chat.run(ANA, "sample nowhere")
    assert "There is no connection `nowhere`" in reply.text
    reply = await world.chat.run(ANA, "help")
    assert "sample LINK" in reply.text
