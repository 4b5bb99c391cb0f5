"""What every repository shares: the document type and the driver-error boundary.

Repositories take an injected ``AsyncDatabase``, own their indexes (``ensure_indexes``, idempotent)
and return dataclasses. Driver errors that mean "the store is not answering" are translated here
into :class:`~bot.errors.StoreUnavailable`, so nothing above this package sees ``pymongo``.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, ParamSpec, Protocol, TypeVar

from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import ConnectionFailure, ExecutionTimeout, WTimeoutError

from bot.errors import StoreUnavailable

Doc = dict[str, Any]
Database = AsyncDatabase[Doc]

P = ParamSpec("P")
R = TypeVar("R")

_UNAVAILABLE = (ConnectionFailure, ExecutionTimeout, WTimeoutError)


def store_call(fn: Callable[P, Awaitable[R]]) -> Callable[P, Coroutine[Any, Any, R]]:
    """Translate "the store does not answer" driver errors into ``StoreUnavailable``."""

    @functools.wraps(fn)
    async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return await fn(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise StoreUnavailable(f"the database is not answering ({type(exc).__name__})") from exc

    return wrapper


class Repository(Protocol):
    async def ensure_indexes(self) -> None: ...
