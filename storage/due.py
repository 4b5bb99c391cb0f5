"""Finding the jobs that are due, at a cost that does not grow with the queue.

A job that may be claimed has ``not_before`` ≤ now: set to now when it is created or queued
again, to the end of the pause when postponed, and to the lease's end while it is claimed (so a
job whose process died is due again when its lease lapses). The ``(state, not_before)`` index
orders the due jobs of a state.

MongoDB answers "the oldest due jobs, limit N" from that index in about N reads. The embedded
store (SecantusDB) does not stop early: it reads every index entry that matches before sorting
(measured: 10,000 queued jobs, ~200 ms a claim). So :class:`DueWindow` asks for a *range*
``[floor, floor + width]`` of ``not_before`` instead, which both engines answer from the index
in about as many reads as the range holds:

- ``floor`` is where due jobs start: no due job of the state lies below it. It is found with a
  full query once (the first claim of the process: on SecantusDB that reads every job of the
  state, once), then only moves up past ranges read empty (what is written later is due at the
  time of writing or after, so an emptied range stays empty); it lags ``MARGIN`` behind now for
  writes still in flight and clocks of other processes a little behind. Every ``RESET`` seconds
  a query for anything *below* it (which reads only what lies there: normally nothing) takes in
  a job written below it (a clock far behind), so such a job waits at most that long.
- ``width`` adapts to the density of the queue: halved when a range holds more than a few
  claims' worth, doubled when it holds less, so a claim reads a few times what it takes.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from pymongo.asynchronous.collection import AsyncCollection

from storage.base import Doc

__all__ = ["DueWindow"]

MARGIN: Final = timedelta(seconds=5)
RESET: Final = 30.0
_START_WIDTH: Final = 2.0
_MIN_WIDTH: Final = 0.001
_MAX_WIDTH: Final = 3600.0
#: Ranges read per call at most (each empty one doubles the width); the floor keeps the rest.
_STEPS: Final = 12


@dataclass
class DueWindow:
    """Where the due jobs of one ``state`` are, in this process."""

    state: str
    #: ``False``: a window that skips jobs on purpose (:meth:`raise_floor`) never looks below.
    resets: bool = True
    floor: datetime | None = None
    width: float = _START_WIDTH
    reset_at: float = 0.0
    #: Ranges read so far, and the last one (for tests and benchmarks).
    reads: int = 0
    last_range: tuple[datetime, datetime] | None = None
    #: Where the last range that found jobs ended, if it stopped short of ``until``: jobs due
    #: after it come after the ones just found (the queue may run on, deep).
    beyond: datetime | None = None

    def raise_floor(self, when: datetime) -> None:
        """Jobs due before ``when`` are another window's: start at ``when`` at the earliest."""
        if self.floor is None or when > self.floor:
            self.floor = when

    def lower(self, when: datetime) -> None:
        """A job of this state was made due at ``when``, maybe below the floor: take it in."""
        if self.floor is not None and when < self.floor:
            self.floor = when

    async def find(
        self,
        col: AsyncCollection[Doc],
        want: int,
        *,
        until: datetime,
        wanted: Callable[[Doc], bool],
    ) -> list[Doc]:
        """The first documents due by ``until`` that are ``wanted``, oldest first: at least
        one if there is any (and about ``want``), or none."""
        if self.floor is None or (self.resets and time.monotonic() >= self.reset_at):
            await self._reset(col, until)
        assert self.floor is not None
        cap = max(4 * want, 64)
        low = self.floor
        for _ in range(_STEPS):
            high = min(low + timedelta(seconds=self.width), until)
            docs = await self._range(col, low, high, cap)
            self._adapt(len(docs), want, cap, grow=high < until)
            found = [doc for doc in docs if wanted(doc)]
            if found:
                self.beyond = high if high < until else None
                return found
            # Read empty of wanted jobs: nothing due lies there any more (short of writes still
            # in flight, which the floor's lag leaves room for).
            self.floor = max(self.floor, min(high, until - MARGIN))
            if high >= until:
                self.beyond = None
                return []
            low = high
        return []

    async def _reset(self, col: AsyncCollection[Doc], until: datetime) -> None:
        """The first floor (the oldest job of the state), or a lower one if a job lies below."""
        query: dict[str, Any] = {"state": self.state}
        if self.floor is not None:
            query["not_before"] = {"$lt": self.floor}
        head = await col.find_one(query, {"not_before": 1}, sort=[("not_before", 1)])
        oldest = head.get("not_before") if head is not None else None
        floor = until - MARGIN if self.floor is None else self.floor
        self.floor = min(oldest, floor) if isinstance(oldest, datetime) else floor
        self.reset_at = time.monotonic() + RESET

    async def _range(
        self, col: AsyncCollection[Doc], low: datetime, high: datetime, cap: int
    ) -> list[Doc]:
        self.reads += 1
        self.last_range = (low, high)
        query: dict[str, Any] = {"state": self.state, "not_before": {"$gte": low, "$lte": high}}
        cursor = col.find(query).sort([("not_before", 1), ("seq", 1)]).limit(cap)
        return [doc async for doc in cursor]

    def _adapt(self, found: int, want: int, cap: int, *, grow: bool) -> None:
        """Narrower after a crowded range; wider after a sparse one that stopped short of now
        (a range that reached now says nothing of how dense the queue is further on)."""
        if found >= cap:
            self.width = max(self.width / 4, _MIN_WIDTH)
        elif found > 2 * want:
            self.width = max(self.width / 2, _MIN_WIDTH)
        elif found < want and grow:
            self.width = min(self.width * 2, _MAX_WIDTH)
