"""``BOT_PLUGINS`` (CONTRACT §3, §10): plugins load by module name; a bad one stops start-up.

Through the real command line for ``serve`` and ``check``, and through the running bot for a
plugin's word, after the built-ins and listed in help.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import sys
from pathlib import Path

import pytest

from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.plugins import load_plugins
from bot.router import Router
from tests.conftest import ANA, World
from tests.plugins import api

ROOT = Path(__file__).resolve().parents[2]
BAD = ("tests.plugins.no_router", "tests.plugins.wrong_router", "tests.plugins.broken")
_ENV_KEEP = ("PATH", "HOME", "LANG", "VIRTUAL_ENV")


def test_a_plugin_loads_as_its_router() -> None:
    assert load_plugins(["tests.plugins.api"]) == [api.router]
    assert load_plugins([]) == []


def test_every_bad_module_is_named_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_plugins(["tests.plugins.api", *BAD, "tests.plugins.missing", "no_such_plugin"])
    problems = caught.value.problems
    assert len(problems) == 5, problems
    assert all(p.startswith("BOT_PLUGINS: ") for p in problems)
    no_router, wrong, broken, missing, absent = problems
    assert "'tests.plugins.no_router' has no `router`" in no_router
    assert "tests.plugins.wrong_router.router is a dict, not a bot.plugin.Router" in wrong
    assert "'tests.plugins.broken' does not import: TypeError" in broken
    assert "async" in broken
    assert "'tests.plugins.missing' is not found" in missing
    assert "'no_such_plugin' is not found on the Python path" in absent


def test_bot_plugins_reads_module_names_and_refuses_what_is_not_one() -> None:
    settings = load_settings({"BOT_PLUGINS": " tests.plugins.api , examples_x.y "})
    assert settings.plugins == ("tests.plugins.api", "examples_x.y")
    for bad in ("my-plugin", "a..b", "x,x"):
        with pytest.raises(ConfigError) as caught:
            load_settings({"BOT_PLUGINS": bad})
        assert caught.value.problems[0].startswith("BOT_PLUGINS: must be"), bad


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k in _ENV_KEEP}
    env.update(
        {
            "PYTHONPATH": str(ROOT),  # where a deployer's plugin package would be found
            "BOT_DATA_DIR": str(tmp_path / "data"),
            "BOT_PORT": "0",
            "BOT_WEBHOOK_SECRET": "s3cr3t",
            "CLIQ_API_BASE": "http://127.0.0.1:9/api/v2",
            "DROPBOX_AUTHORIZE_URL": "http://127.0.0.1:9/oauth2/authorize",
            "DROPBOX_API_URL": "http://127.0.0.1:9",
            "DROPBOX_CONTENT_URL": "http://127.0.0.1:9",
        }
    )
    env.update(extra)
    return env


async def _cli(tmp_path: Path, command: str, plugins: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        command,
        env=_env(tmp_path, BOT_PLUGINS=plugins),
        cwd=tmp_path,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_serve_stops_before_starting_naming_the_bad_plugin(tmp_path: Path) -> None:
    code, _, err = await _cli(tmp_path, "serve", "tests.plugins.api,tests.plugins.no_router")
    assert code == 2, err
    lines = [line for line in err.splitlines() if "BOT_PLUGINS" in line]
    assert lines == [
        "config: BOT_PLUGINS: module 'tests.plugins.no_router' has no `router`"
        " (a bot.plugin.Router at module level)"
    ], err
    assert "listening" not in err
    assert not (tmp_path / "data" / "store").exists(), "nothing should have started"


async def test_check_reports_each_bad_plugin(tmp_path: Path) -> None:
    code, out, _ = await _cli(tmp_path, "check", ",".join(("tests.plugins.api", *BAD)))
    assert code == 1
    named = [line for line in out.splitlines() if line.startswith("config: BOT_PLUGINS:")]
    assert len(named) == 3, out
    for module, line in zip(BAD, named, strict=True):
        assert module in line
    assert "tests.plugins.api" not in out


async def test_check_accepts_good_plugins(tmp_path: Path) -> None:
    _, out, _ = await _cli(tmp_path, "check", "tests.plugins.api")
    assert "BOT_PLUGINS" not in out


@pytest.fixture
def world_settings(settings: Settings) -> Settings:
    return dataclasses.replace(settings, plugins=("tests.plugins.api",))


async def test_a_plugin_word_is_routed_after_the_built_ins_and_listed_in_help(
    world: World,
) -> None:
    reply = await world.chat.say(ANA, "help")
    assert "fetch" in reply.text and "call a URL through a connection" in reply.text
    reply = await world.chat.say(ANA, f"fetch nowhere {world.bot_url}/healthz")
    assert reply.status == 200
    assert "There is no connection `nowhere`" in reply.text  # ctx.invoke's own error
    assert isinstance(api.router, Router)
