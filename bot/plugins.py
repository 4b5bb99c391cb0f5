"""Loading ``BOT_PLUGINS`` (CONTRACT §3, §10): importable modules, each with a ``router``.

A plugin is any module Python can import (on ``PYTHONPATH``, installed, or next to the working
directory with ``python -m bot``) whose module-level ``router`` is a :class:`bot.plugin.Router`.
``create_app`` includes their routers after the built-in features, in ``BOT_PLUGINS`` order;
:func:`plugin_problems` is what ``cliqbot serve`` and ``cliqbot check`` report before anything
starts, one line per module that does not load, naming it.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence

from bot.errors import ConfigError
from bot.router import Router

__all__ = ["load_plugins", "plugin_problems"]


def load_plugins(names: Sequence[str]) -> list[Router]:
    """The routers of the modules ``names``, in order; raises :class:`ConfigError` naming every
    module that does not import or has no ``router`` of the right type."""
    routers: list[Router] = []
    problems: list[str] = []
    for name in names:
        found = _router_of(name)
        if isinstance(found, Router):
            routers.append(found)
        else:
            problems.append(f"BOT_PLUGINS: {found}")
    if problems:
        raise ConfigError(problems)
    return routers


def plugin_problems(names: Sequence[str]) -> list[str]:
    """What :func:`load_plugins` would refuse, as ``config`` problem lines (empty: all load)."""
    try:
        load_plugins(names)
    except ConfigError as err:
        return err.problems
    return []


def _router_of(name: str) -> Router | str:
    """The ``router`` of module ``name``, or what is wrong with it."""
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (name == exc.name or name.startswith(f"{exc.name}.")):
            return f"module {name!r} is not found on the Python path (PYTHONPATH)"
        return f"module {name!r} does not import: {_described(exc)}"
    except Exception as exc:  # whatever a plugin's import raises is its problem, reported
        return f"module {name!r} does not import: {_described(exc)}"
    router = getattr(module, "router", None)
    if router is None:
        return f"module {name!r} has no `router` (a bot.plugin.Router at module level)"
    if not isinstance(router, Router):
        return f"{name}.router is a {type(router).__name__}, not a bot.plugin.Router"
    return router


def _described(exc: BaseException) -> str:
    detail = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {detail[0]}" if detail else type(exc).__name__
