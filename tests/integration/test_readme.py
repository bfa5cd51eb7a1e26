"""The top README is a user's guide: it says how to install Rony into a project, how a handler
pushes, the hooks, the JSON envelope (its example is run here), the version and DEBUG logging;
the benchmark history lives in benchmarks/README.md."""

from __future__ import annotations

import json
import re
from pathlib import Path

import aiohttp

from examples.echo.app import app as echo_app
from rony.server.testing import serve

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
BENCH = (ROOT / "benchmarks" / "README.md").read_text()


def test_quick_start_is_unchanged() -> None:
    quick = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "hatch run serve" in quick
    assert "hatch test -p" in quick


def test_install_and_topics_a_user_reaches_for() -> None:
    install = README.split("## Install Rony into your own project", 1)[1].split("\n## ", 1)[0]
    command = "pip install ./packages/rony-core ./packages/rony-store ./packages/rony-server"
    assert command in install
    assert 'python -m pip install -e ".[test]"' in install
    assert "pip install rony-client" not in README  # no such distribution on the index
    guide = README.split("## Writing a service", 1)[1].split("\n## ", 1)[0]
    for topic in (
        "edge_of(ctx).push(conn_id",
        "@app.on_connect",
        "@app.on_disconnect",
        "add_pre_handler",
        "examples/notes/app.py",
        '"requestId"',
        "`cmd`",
        "rony --version",
        "--log-level debug",
    ):
        assert topic in guide, topic
    assert (ROOT / "examples" / "notes" / "app.py").is_file()


def test_benchmark_history_moved_to_benchmarks_readme() -> None:
    assert "| benchmark | ours | baseline | ratio | goal |" in BENCH
    assert "session 6" in BENCH
    assert "session 6" not in README
    assert "callgrind" not in README
    assert "benchmarks/README.md" in README
    top = README.split("## Benchmarks", 1)[1].split("\n## ", 1)[0]
    assert len(top.splitlines()) < 10


async def test_the_json_envelope_example_answers_as_shown() -> None:
    m = re.search(r"-d '(\{.*?\})'\n# (\{.*?\})\n", README)
    assert m is not None, "the curl example of a JSON envelope"
    request, expected = json.loads(m.group(1)), json.loads(m.group(2))
    async with (
        serve(echo_app) as edge,
        aiohttp.ClientSession() as http,
        http.post(edge.url, json=request) as r,
    ):
        assert r.status == 200
        assert await r.json() == expected
