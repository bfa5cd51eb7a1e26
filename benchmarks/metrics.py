"""The cost of a Prometheus scrape of a node, against baselines measured in the same run.

    hatch run bench:metrics [--rounds R] [--series N] [--clients N] [--seconds S]

Figures (ours / baseline / goal):

* render, µs per scrape: the body of ``GET /metrics`` of an Edge holding ``--series`` request
  series (constructors x {ok, an error}, each with its duration histogram) plus the gateway,
  store, tunnel, process and platform metrics / ``generate_latest`` of a registry of
  prometheus_client's own Counter and Histogram objects holding the same request series (what
  a node instrumented the usual way would render) / information (a render blocks the node's
  event loop for that long)
* scrape of a busy node, ms (p50, p99): ``GET /metrics`` of a ``rony serve`` process while
  ``--clients`` WebSocket clients load it (benchmarks/gateway.py's load processes) /
  ``GET /healthz`` of the same node at the same time (the HTTP round trip on a busy node, with
  no exposition work) / p99 < 20 ms

The render figure runs in this process, nothing else loaded; the busy figure alternates the
two GETs, one every 20 ms, for ``--seconds`` per round.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def render_us(series: int, number: int) -> tuple[float, float]:
    """(ours, baseline) µs per ``generate_latest``, with ``series`` request series each."""
    from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

    from rony.core import Kind, Ping, RequestCtx
    from rony.core.errors import AccessError
    from rony.server import App, Edge
    from rony.server._app import HandlerEntry
    from rony.server._metrics import BUCKETS

    async def nothing(ctx: RequestCtx) -> None:
        pass

    class Ctx:  # what RequestMetrics.observe reads of a RequestCtx
        def __init__(self, failed: bool) -> None:
            self.dispatch = type("D", (), {"kind": Kind.GATEWAY})()
            self.error = AccessError("X", "no") if failed else None

    ok, bad = Ctx(False), Ctx(True)
    with tempfile.TemporaryDirectory() as tmp:
        edge = Edge(App("bench"), data_dir=tmp)
        await edge.start()
        try:
            metrics = edge.dispatcher.metrics
            endpoint = edge.gateway.metrics if edge.gateway is not None else None
            assert metrics is not None
            assert endpoint is not None
            base = CollectorRegistry()
            requests = Counter(
                "rony_rpc_requests", "", ("kind", "constructor", "outcome"), registry=base
            )
            duration = Histogram(
                "rony_rpc_request_duration_seconds",
                "",
                ("kind", "constructor"),
                buckets=BUCKETS,
                registry=base,
            )
            for i in range(series):
                entry = HandlerEntry(1000 + i, (nothing,), Ping, service="Bench", method=f"M{i}")
                metrics.observe(ok, entry, 0.00001, True)  # type: ignore[arg-type]
                metrics.observe(bad, entry, 0.00001, True)  # type: ignore[arg-type]
                name = f"Bench.M{i}"
                requests.labels("gateway", name, "ok").inc()
                requests.labels("gateway", name, "E07").inc()
                duration.labels("gateway", name).observe(0.00001)
                duration.labels("gateway", name).observe(0.00001)

            # (the baseline's lines include a _created sample per series, which ours has not;
            # ours has the gateway, store, tunnel and process metrics besides)
            def ours() -> bytes:  # what GET /metrics sends
                return endpoint.collector.render().encode() + generate_latest(endpoint.registry)

            def baseline() -> bytes:
                return generate_latest(base)

            for render in (ours, baseline):
                assert render().count(b'constructor="Bench.M') >= 4 * series
            out = []
            for render in (ours, baseline):
                t0 = time.perf_counter()
                for _ in range(number):
                    render()
                out.append((time.perf_counter() - t0) / number * 1e6)
            return out[0], out[1]
        finally:
            await edge.stop()


async def busy_scrapes(url: str, seconds: float) -> tuple[list[float], list[float]]:
    """GET /metrics and GET /healthz in turns, every 20 ms, for ``seconds``: ms each."""
    import aiohttp

    metrics: list[float] = []
    health: list[float] = []
    async with aiohttp.ClientSession() as http:
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            for path, out in (("/metrics", metrics), ("/healthz", health)):
                t0 = time.perf_counter()
                async with http.get(url + path) as r:
                    await r.read()
                    assert r.status == 200, path
                out.append((time.perf_counter() - t0) * 1e3)
                await asyncio.sleep(0.01)
    return metrics, health


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--series", type=int, default=200, help="request series (constructors)")
    ap.add_argument("--number", type=int, default=200, help="renders per round")
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--loaders", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0, help="busy seconds per round")
    args = ap.parse_args()
    import os

    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cpus, {args.series} series, "
          f"{args.clients} WS clients from {args.loaders} load processes, median of "
          f"{args.rounds} rounds", flush=True)  # fmt: skip

    runs = [asyncio.run(render_us(args.series, args.number)) for _ in range(args.rounds)]
    ours = statistics.median(r[0] for r in runs)
    base = statistics.median(r[1] for r in runs)
    ratios = [r[0] / r[1] for r in runs]
    print(f"render ({args.series} series, µs/scrape)      ours {ours:9.0f}   baseline "
          f"{base:9.0f}   ratio {statistics.median(ratios):.2f}x "
          f"[{min(ratios):.2f}-{max(ratios):.2f}]  (information)", flush=True)  # fmt: skip

    from benchmarks.gateway import Loaders, rony_server

    loaders = Loaders(args.loaders)
    with tempfile.TemporaryDirectory() as tmp:
        node = rony_server(tmp)
        try:
            p50s, p99s, h50s, h99s, rates = [], [], [], [], []
            for _ in range(args.rounds):

                async def round_(node_url: str = node.url) -> tuple[list[float], list[float]]:
                    load = asyncio.to_thread(
                        loaders.run, [("ws", node, True)], args.clients, args.seconds, 0.25
                    )
                    task = asyncio.ensure_future(load)
                    await asyncio.sleep(0.3)  # the load is on
                    got = await busy_scrapes(node_url, args.seconds - 0.6)
                    ((rate, _),) = await task
                    rates.append(rate)
                    return got

                m, h = asyncio.run(round_())
                p50s.append(statistics.median(m))
                p99s.append(_quantile(m, 0.99))
                h50s.append(statistics.median(h))
                h99s.append(_quantile(h, 0.99))
        finally:
            loaders.close()
            node.stop()
    med = statistics.median
    print(f"busy node ({med(rates):.0f} WS calls/s): GET /metrics p50 {med(p50s):.2f} ms, p99 "
          f"{med(p99s):.2f} ms [{min(p99s):.2f}-{max(p99s):.2f}]; baseline GET /healthz p50 "
          f"{med(h50s):.2f} ms, p99 {med(h99s):.2f} ms; p50 ratio "
          f"{med(p50s) / med(h50s):.2f}x  (goal: p99 < 20 ms)", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
