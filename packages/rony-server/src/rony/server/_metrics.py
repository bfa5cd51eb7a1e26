"""Request metrics of an Edge: counted on the hot path as plain ints, rendered at scrape.

Status: the counting half (the dispatcher's RequestMetrics, read by the status page). The
Prometheus exposition (a collector over these counts, /metrics) is not built yet (issue 16).

Theory of operation
-------------------
Nothing of ``prometheus_client`` runs per request. The parts count what they do in plain
attributes and lists they own: the dispatcher a :class:`RequestSeries` per (kind, constructor)
(a count per duration bucket, the sum of durations, errors by code), the gateway its
connections, messages and bytes, the store's writer its commits, the membership its probes,
the tunnel its calls. A scrape walks them once and builds the metric families
(:class:`EdgeCollector`, registered in a registry of the Edge's own, so several Edges in one
process do not collide). A prometheus_client ``Counter.labels(...).inc()`` per request costs
a lock and a dict lookup of a label tuple, ~1 µs: a tenth of a small WebSocket request.

Names follow Go Rony's (``rony_`` namespace; inventory §2.10) with the ``_total`` and
``_seconds`` suffixes Prometheus expects. Durations are in seconds, with Go Rony's bucket
bounds (it recorded whole milliseconds, so a 0.3 ms request was 0: we do not truncate). The
server id and replica set are labels of ``rony_server_info`` only (join on it), not of every
series. Requests to constructors that have no handler share one series (``constructor="unknown"``):
a client sending random ids must not grow the series without bound.
"""

from __future__ import annotations

import time
from bisect import bisect_left

from rony.core import Kind, RequestCtx, registry

from ._app import HandlerEntry

__all__ = ["BUCKETS", "RequestMetrics", "RequestSeries"]

BUCKETS: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0,
)  # fmt: skip
"""Histogram bounds in seconds: Go Rony's millisecond buckets (0.1 ms .. 5 s), in seconds."""

UNKNOWN = "unknown"


class RequestSeries:
    """The figures of one constructor's requests of one kind (gateway or tunnel)."""

    __slots__ = ("buckets", "constructor", "errors", "kind", "name", "sum")

    def __init__(self, kind: Kind, constructor: int, name: str) -> None:
        self.kind = kind
        self.constructor = constructor
        self.name = name
        self.buckets = [0] * (len(BUCKETS) + 1)  # the last one: over the largest bound
        self.sum = 0.0
        self.errors: dict[str, int] = {}  # Error code (E01, ...) or "cancelled" -> count

    @property
    def count(self) -> int:
        return sum(self.buckets)


class RequestMetrics:
    """The dispatcher's request figures: what :meth:`observe` is given per finished request."""

    __slots__ = ("_by_kind", "_unknown")

    def __init__(self) -> None:
        # Indexed by Kind (an IntEnum): one dict of constructor -> series per kind.
        self._by_kind: list[dict[int, RequestSeries]] = [{} for _ in range(max(Kind) + 1)]
        self._unknown: dict[Kind, RequestSeries] = {}

    def series(self) -> list[RequestSeries]:
        out = [s for d in self._by_kind for s in d.values()]
        return out + list(self._unknown.values())

    def observe(
        self, ctx: RequestCtx, entry: HandlerEntry | None, started: float, done: bool
    ) -> None:
        """One request ended (``done`` False: cancelled, e.g. by Edge.stop)."""
        kind = ctx.dispatch.kind
        if entry is None:
            series = self._unknown.get(kind) or self._new_unknown(kind)
        else:
            series = self._by_kind[kind].get(entry.constructor) or self._new(kind, entry)
        elapsed = time.monotonic() - started
        if elapsed < 0.0:  # (another loop's clock: uvloop's is millisecond-cached)
            elapsed = 0.0
        series.sum += elapsed
        series.buckets[bisect_left(BUCKETS, elapsed)] += 1
        err = ctx.error
        if err is not None or not done:
            code = err.code if err is not None else "cancelled"
            errors = series.errors
            errors[code] = errors.get(code, 0) + 1

    def _new(self, kind: Kind, entry: HandlerEntry) -> RequestSeries:
        if entry.method:
            name = f"{entry.service}.{entry.method}" if entry.service else entry.method
        else:
            name = registry.name_of(entry.constructor) or str(entry.constructor)
        series = self._by_kind[kind][entry.constructor] = RequestSeries(
            kind, entry.constructor, name
        )
        return series

    def _new_unknown(self, kind: Kind) -> RequestSeries:
        series = self._unknown[kind] = RequestSeries(kind, 0, UNKNOWN)
        return series

    def totals(self) -> tuple[int, int]:
        """(requests, requests that ended in an Error or were cancelled), all kinds."""
        requests = errors = 0
        for s in self.series():
            requests += s.count
            errors += sum(s.errors.values())
        return requests, errors
