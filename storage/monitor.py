"""What a client sends the store: commands counted, and writes seen by the caches.

:class:`StoreMonitor` is a PyMongo command listener, one per client (``Store.open`` attaches it;
:meth:`StoreMonitor.of` finds it again from any database of that client). It does two things:

- **counts every command** (each one is a store round trip; a ``getMore`` is one more), by
  command name and by path: ``ack`` for commands sent while a webhook delivery is being
  acknowledged (:func:`storage.events.acknowledging`), ``other`` for everything else (the
  upload worker, OAuth callbacks, housekeeping). A batched write counts once, in the task that
  sent it — so ``ack`` commands divided by events is the acknowledgement path's round trips per
  event. It is a Prometheus collector too: ``cliqbot_store_commands_total{command, path}`` on
  ``/metrics`` (``create_app`` registers it).
- **bumps a generation per collection** when a write to it (``insert``, ``update``, ``delete``,
  ``findAndModify``) returns, succeeded or failed: :class:`bot.cache.ReadCache` drops what it
  read from that collection before the write, so this process reads its own writes at once.

Listeners run in the task that sends the command and must not block: these only count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from pymongo import monitoring

from storage.events import acknowledging

__all__ = ["StoreMonitor"]

_WRITES = frozenset({"insert", "update", "delete", "findAndModify"})


class StoreMonitor(monitoring.CommandListener):
    def __init__(self) -> None:
        self._generations: Counter[str] = Counter()
        self._writes: dict[tuple[Any, int], str] = {}
        self.commands: Counter[tuple[str, str]] = Counter()

    @staticmethod
    def of(db: Any) -> StoreMonitor | None:
        """The monitor attached to ``db``'s client, if any (``client.options.event_listeners``)."""
        for listener in db.client.options.event_listeners:
            if isinstance(listener, StoreMonitor):
                return listener
        return None

    def generation(self, namespace: str) -> int:
        """How many writes to ``namespace`` (``db.collection``) this client has seen return."""
        return self._generations[namespace]

    def count(self, path: str | None = None, command: str | None = None) -> int:
        """Commands sent so far, on ``path`` (``ack`` / ``other``) and of ``command`` if given."""
        return sum(
            n
            for (name, where), n in self.commands.items()
            if (path is None or where == path) and (command is None or name == command)
        )

    # -- the listener --

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        self.commands[(name, "ack" if acknowledging() else "other")] += 1
        if name in _WRITES:
            collection = event.command.get(name)
            if isinstance(collection, str):
                key = (event.connection_id, event.request_id)
                self._writes[key] = f"{event.database_name}.{collection}"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._returned(event.connection_id, event.request_id)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._returned(event.connection_id, event.request_id)  # it may have been applied

    def _returned(self, connection_id: Any, request_id: int) -> None:
        namespace = self._writes.pop((connection_id, request_id), None)
        if namespace is not None:
            self._generations[namespace] += 1

    # -- the Prometheus collector --

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily(
            "cliqbot_store_commands",
            "Store commands (round trips) sent, by command and path (ack: acknowledging a"
            " webhook delivery; other: the upload worker and everything else).",
            labels=["command", "path"],
        )
        for (name, path), n in sorted(self.commands.items()):
            family.add_metric([name, path], n)
        yield family
