"""The core imports no driver, no web framework and no chat behaviour (STYLE: layout).

Each check runs in a fresh interpreter, so what the test run itself imported does not count.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

CORE = [
    "bot.router",
    "bot.context",
    "bot.plugin",
    "bot.admin",
    "bot.invoke",
    "bot.cliq.events",
    "bot.cliq.messages",
    "bot.errors",
]
FORBIDDEN = ("pymongo", "aiohttp", "handlers", "motor", "bson")

_PROBE = """
import importlib, json, sys
importlib.import_module(sys.argv[1])
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] in sys.argv[2:])))
"""


@pytest.mark.parametrize("module", CORE)
def test_core_module_loads_no_driver_web_or_handlers_module(module: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, module, *FORBIDDEN],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [], f"importing {module} loads {done.stdout.strip()}"


def test_the_plugin_surface_is_exactly_the_contracts() -> None:
    import bot.plugin

    assert sorted(bot.plugin.__all__) == sorted(
        [
            "Router",
            "Event",
            "Context",
            "Message",
            "Button",
            "text",
            "InvokeResponse",
            "NotAuthorized",
            "ChatError",
        ]
    )
    assert all(hasattr(bot.plugin, name) for name in bot.plugin.__all__)
