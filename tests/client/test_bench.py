"""``rony bench`` / ``python -m rony.client.bench`` against real nodes, over WebSocket and HTTP."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import pytest

from rony.client import bench
from rony.core import errors as rony_errors
from rony.server import Edge
from rony.server.cli import main as rony_main
from tests.client import _nodeapp as na
from tests.client.conftest import ThreadNode

TRANSPORTS = pytest.mark.parametrize("transport", ["ws", "http"])


def url_of(edge_url: str, transport: str) -> str:
    """The node's URL with the scheme that picks ``transport``."""
    rest = edge_url.split("://", 1)[1]
    return f"{transport}://{rest}"


def parse(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    bench.add_arguments(p)
    return p.parse_args(argv)


async def run(*argv: str) -> bench.BenchReport:
    return await bench.run_bench(bench.config_from_args(parse(*argv)))


@TRANSPORTS
async def test_count_run_reports_every_request(node: Edge, transport: str) -> None:
    report = await run(url_of(node.url, transport), "--count", "300", "--clients", "3")
    assert (report.requests, report.ok, report.errors) == (300, 300, {})
    assert (report.transport, report.constructor) == (transport, "Ping")
    assert (report.samples, report.sampled) == (300, False)
    lat = report.latency_ms
    order = [lat[k] for k in ("min", "p50", "p90", "p99", "p99.9", "max")]
    assert all(isinstance(v, float) for v in order)
    assert order == sorted(order)  # type: ignore[type-var]
    assert lat["min"] <= lat["mean"] <= lat["max"]  # type: ignore[operator]
    assert report.throughput_rps > 0
    decoded = json.loads(json.dumps(report.as_json()))
    assert (decoded["ok"], decoded["latency_ms"]["p99.9"]) == (300, lat["p99.9"])


@TRANSPORTS
async def test_errors_are_counted_by_wire_code(node: Edge, transport: str) -> None:
    report = await run(
        url_of(node.url, transport), "--count", "40", "--constructor", str(na.C_Fail)
    )
    assert report.constructor == "TestFail"  # the number named from the registry
    assert (report.ok, report.errors) == (0, {"E07": 40})
    assert report.latency_ms["p50"] is None
    mixed = await run(url_of(node.url, transport), "--count", "20", "--constructor", "TestRaise")
    assert mixed.errors == {rony_errors.UnavailableError.default_code.wire: 20}


async def test_timeouts_and_messages(node: Edge) -> None:
    # Test.Slow sleeps Ping.ID ms: 300 ms against a 50 ms timeout is a client-side timeout
    slow = await run(
        node.url,
        "--count",
        "4",
        "--clients",
        "1",
        "--inflight",
        "4",
        "--constructor",
        "TestSlow",
        "--message-json",
        '{"ID": 300}',
        "--timeout",
        "0.05",
    )
    assert slow.errors == {"timeout": 4}
    echo = await run(node.url, "--count", "10", "--constructor", "TestEcho", "--message-json", "{}")
    assert echo.ok == 10


async def test_duration_and_warmup(node: Edge) -> None:
    report = await run(
        node.url, "--duration", "0.3", "--warmup", "0.1", "--clients", "2", "--inflight", "2"
    )
    assert report.ok > 0
    assert report.errors == {}
    assert 0.3 <= report.elapsed_s < 3.0
    assert report.warmup_s == 0.1


def test_reservoir_bounds_memory() -> None:
    cfg = bench.BenchConfig(url="ws://x", max_samples=100)
    r = bench._Run(cfg)
    for ns in range(10_000):
        r.sample(ns)
    assert (len(r.samples), r.ok, r.seen) == (100, 10_000, 10_000)
    assert (r.min_ns, r.max_ns) == (0, 9_999)
    assert len(set(r.samples)) == 100  # distinct draws from the whole run
    assert max(r.samples) > 1_000  # not just the first hundred


def test_percentile_nearest_rank() -> None:
    data = list(range(1, 1001))
    assert [bench.percentile(data, p) for p in (50, 90, 99, 99.9, 100)] == [
        500,
        900,
        990,
        999,
        1000,
    ]
    assert bench.percentile([7], 99.9) == 7


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["ftp://x"], "URL must start"),
        (["ws://x", "--clients", "0"], "--clients"),
        (["ws://x", "--inflight", "-1"], "--inflight"),
        (["ws://x", "--duration", "0"], "--duration"),
        (["ws://x", "--count", "0"], "--count"),
        (["ws://x", "--warmup", "nan"], "--warmup"),
        (["ws://x", "--constructor", "NoSuchThing"], "not a registered name"),
        (["ws://x", "--message-json", "{bad"], "--message-json is not a Ping"),
        (["ws://x", "--message-json", '{"Nope": 1}'], "--message-json is not a Ping"),
        (["ws://x", "--import", "no_such_module_xyz"], "--import no_such_module_xyz"),
    ],
)
def test_bad_arguments_exit_2(
    argv: list[str], why: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench.main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("rony bench: ")
    assert why in err
    assert "Traceback" not in err


def test_argparse_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["ws://x", "--clients", "many"], ["ws://x", "--count", "1", "--duration", "1"]):
        with pytest.raises(SystemExit) as info:
            bench.main(argv)
        assert info.value.code == 2
    assert "Traceback" not in capsys.readouterr().err


def test_rony_bench_subcommand(thread_node: ThreadNode, capsys: pytest.CaptureFixture[str]) -> None:
    assert rony_main(["bench", thread_node.url, "--count", "50", "--json", "--quiet"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert (out["ok"], out["errors"]) == (50, {})
    code = rony_main(
        ["bench", thread_node.url, "--count", "5", "--constructor", "TestFail", "--quiet"]
    )
    assert code == 1
    text = capsys.readouterr().out
    assert "errors     E07 5" in text
    assert "ok 0" in text


async def test_python_m_subprocess(node: Edge) -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rony.client.bench",
        url_of(node.url, "ws"),
        "--count",
        "200",
        "--json",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await proc.communicate()
    assert proc.returncode == 0, err.decode()
    report = json.loads(out)
    assert (report["requests"], report["ok"], report["errors"]) == (200, 200, {})
    assert report["latency_ms"]["p50"] <= report["latency_ms"]["p99"]
