"""Load on one real ``rony serve`` node from other processes: many WebSocket clients at once
(0 errors, 0 lost replies, p99 reported), and many idle WebSockets (memory per connection
reported, a new client still answered). The figures print with ``-s``; the long runs are in
``benchmarks/soak`` (1,000 clients x 60 s, 10,000 idle connections)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.reliability._load import IdleConnections, first_reply_ms, run_load
from tests.reliability._node import ServeProcess

pytestmark = pytest.mark.slow


@pytest.fixture
def node(tmp_path: Path) -> Iterator[ServeProcess]:
    with ServeProcess(tmp_path / "data", nofile=8192) as proc:
        yield proc


def test_200_clients_for_3_seconds_from_two_processes(node: ServeProcess) -> None:
    result = run_load(node.ws_url, clients=200, seconds=3, processes=2, constructor="RelEcho")
    print(
        f"\nload: {result.clients} clients x {result.seconds} s: {result.requests} requests, "
        f"{result.rps:.0f}/s, errors {result.errors}, p50 {result.p50_ms:.2f} ms, "
        f"p99 {result.p99_ms:.2f} ms"
    )
    assert result.errors == {}
    assert result.lost == 0
    assert result.ok == result.requests > 200  # every client got replies
    assert node.alive()


def test_1000_idle_connections(node: ServeProcess) -> None:
    asyncio.run(first_reply_ms(node.port))  # warm: the node's first request
    before = node.rss()
    idle = IdleConnections("127.0.0.1", node.port, 1000)
    try:
        per_conn = (node.rss() - before) / 1000
        new_ms = min(asyncio.run(first_reply_ms(node.port)) for _ in range(3))
        kib = per_conn / 1024
        print(f"\nidle: 1000 WebSockets, {kib:.1f} KiB RSS each; new client {new_ms:.1f} ms")
        assert node.alive()
        assert per_conn < 200 * 1024  # a sanity bound; the figure is reported, not asserted
    finally:
        idle.close()
