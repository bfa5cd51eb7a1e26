"""Request metrics of an Edge: counted on the hot path as plain ints, rendered at scrape.

The counting half: the dispatcher's :class:`RequestMetrics`, the gateway's
:class:`GatewayCounters`, the Edge's :class:`RemoteCalls` (the store and the membership keep
their own). ``rony.server._prometheus`` renders them for ``GET /metrics``; the status page
reads them too.

Theory of operation
-------------------
Nothing of ``prometheus_client`` runs per request. The parts count what they do in plain
attributes and lists they own: the dispatcher a :class:`RequestSeries` per (kind, constructor)
(a count per duration bucket, the sum of durations, errors by code), the gateway its
connections, messages and bytes, the store's writer its commits, the membership its probes,
the tunnel its calls. A scrape walks them once and writes them in the text format
(``rony.server._prometheus.EdgeCollector``), then renders the Edge's own registry (process
metrics, the app's collectors; one per Edge, so several Edges in one process do not
collide). A prometheus_client ``Counter.labels(...).inc()`` per request costs a lock and a dict
lookup of a label tuple, ~1 µs: a tenth of a small WebSocket request.

Names follow Go Rony's (``rony_`` namespace; inventory §2.10) with the ``_total`` and
``_seconds`` suffixes Prometheus expects. Durations are in seconds, with Go Rony's bucket
bounds (it recorded whole milliseconds, so a 0.3 ms request was 0: we do not truncate). The
server id and replica set are labels of ``rony_server_info`` only (join on it), not of every
series. Requests to constructors that have no handler share one series (``constructor="unknown"``):
a client sending random ids must not grow the series without bound.
"""

from __future__ import annotations

import asyncio
import time
from bisect import bisect_left
from collections.abc import Sequence

from rony.core import C_Error, Error, Kind, MessageEnvelope, RequestCtx, RonyError

from ._app import HandlerEntry

__all__ = [
    "BUCKETS",
    "FIRST_BUCKET",
    "GatewayCounters",
    "RemoteCalls",
    "RequestMetrics",
    "RequestSeries",
]

BUCKETS: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 2.0, 3.0, 5.0,
)  # fmt: skip
"""Histogram bounds in seconds: Go Rony's millisecond buckets (0.1 ms .. 5 s), in seconds."""

UNKNOWN = "unknown"
FIRST_BUCKET = _FIRST = BUCKETS[0]
_bisect = bisect_left


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

    __slots__ = ("_unknown", "by_kind")

    def __init__(self) -> None:
        # Indexed by Kind (an IntEnum): one dict of constructor -> series per kind.
        self.by_kind: list[dict[int, RequestSeries]] = [{} for _ in range(max(Kind) + 1)]
        self._unknown: dict[Kind, RequestSeries] = {}

    def series(self) -> list[RequestSeries]:
        out = [s for d in self.by_kind for s in d.values()]
        return out + list(self._unknown.values())

    def observe(
        self, ctx: RequestCtx, entry: HandlerEntry | None, elapsed: float, done: bool
    ) -> None:
        """One request ended after ``elapsed`` seconds (``done`` False: cancelled, e.g. by
        Edge.stop). The dispatcher counts the usual request inline (a known series, the first
        bucket, no error) and calls this for the others: a new series, a slower request, an
        error."""
        if entry is not None:
            series = self.by_kind[ctx.dispatch.kind].get(entry.constructor)
            if series is None:
                series = self._new(ctx.dispatch.kind, entry)
        else:
            kind = ctx.dispatch.kind
            series = self._unknown.get(kind) or self._new_unknown(kind)
        if elapsed <= _FIRST:  # (most requests: no search)
            series.buckets[0] += 1
            if elapsed > 0.0:  # (else another loop's clock: uvloop's is millisecond-cached)
                series.sum += elapsed
        else:
            series.buckets[_bisect(BUCKETS, elapsed)] += 1
            series.sum += elapsed
        if not done or ctx.error is not None:
            err = ctx.error
            code = err.code if err is not None else "cancelled"
            errors = series.errors
            errors[code] = errors.get(code, 0) + 1

    def _new(self, kind: Kind, entry: HandlerEntry) -> RequestSeries:
        series = self.by_kind[kind][entry.constructor] = RequestSeries(
            kind, entry.constructor, entry.display_name
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


class GatewayCounters:
    """What the gateway counts, as plain ints (each a single ``+=`` where it happens).

    Messages are RPC/REST requests and replies: WebSocket data frames in and out (pushes
    included), HTTP RPC and REST requests and responses; not the health, status or metrics
    pages. Bytes are payload bytes (frame payloads, HTTP bodies), not framing or headers.
    """

    __slots__ = (
        "conns_total",
        "http_in",
        "http_in_bytes",
        "http_out",
        "http_out_bytes",
        "refused",
        "ws_in",
        "ws_in_bytes",
        "ws_out",
        "ws_out_bytes",
    )

    def __init__(self) -> None:
        self.conns_total = 0  # TCP connections accepted
        self.refused: dict[str, int] = {}  # reason -> connections (or upgrades) refused
        self.ws_in = self.ws_in_bytes = self.ws_out = self.ws_out_bytes = 0
        self.http_in = self.http_in_bytes = self.http_out = self.http_out_bytes = 0

    def refuse(self, reason: str) -> None:
        self.refused[reason] = self.refused.get(reason, 0) + 1


class RemoteCalls:
    """The Edge's calls to other nodes (``execute_remote``): outcomes and round-trip times.

    Outcomes: ``ok``; the code of the Error the remote handler answered (``E05``, ...); the
    code of the failure raised here (``E02`` unavailable, ``E06`` timeout); ``cancelled``.
    The round trip (the whole call, its retries included) is recorded for answered calls
    only: a timeout's duration is the timeout.
    """

    __slots__ = ("buckets", "outcomes", "sum")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)
        self.sum = 0.0
        self.outcomes: dict[str, int] = {}

    def answered(self, started: float, replies: Sequence[MessageEnvelope]) -> None:
        """A call that ``started`` (``_monotonic()``) was answered with ``replies``: the code
        of an Error among them is its outcome, else ``ok``."""
        elapsed = _monotonic() - started
        self.sum += elapsed
        self.buckets[bisect_left(BUCKETS, elapsed)] += 1
        outcome = "ok"
        for env in replies:
            if env.Constructor == C_Error:
                err = Error()
                try:
                    err.ParseFromString(env.Message)
                    outcome = err.Code or "E00"
                except Exception:
                    outcome = "E00"
                break
        self._count(outcome)

    def failed(self, exc: BaseException) -> None:
        """A call failed here (no answer): the code of a RonyError, else cancelled/failed."""
        if isinstance(exc, RonyError):
            self._count(exc.code)
        elif isinstance(exc, asyncio.CancelledError):
            self._count("cancelled")
        else:
            self._count("failed")

    def _count(self, outcome: str) -> None:
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1


_monotonic = time.monotonic
