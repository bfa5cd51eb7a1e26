"""Acceptance: the status page of a three-node cluster of real ``rony serve`` processes (real
certificates, the tunnel on), rendered by a real headless Chromium (Debian's ``chromium``).

The DOM Chromium builds lists the three members with their states; a node that leaves is then
shown as left; a screenshot is taken and checked to be a PNG. Without chromium the test is
skipped, except under CI (``CI`` set), where ``.ci/run`` installs it and its absence fails.
"""

from __future__ import annotations

import os
import re
import struct
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from rony.client import Client, ClientSettings
from rony.core import KeyValue, Ping
from tests.cluster._procs import Node, ProcCluster, wait_for
from tests.tunnel._tunnelapp import C_Forward

pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
APP = "tests.tunnel._tunnelapp:app"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chromium_or_skip() -> Path:
    if CHROMIUM.exists():
        return CHROMIUM
    if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
        pytest.fail(f"CI is set and {CHROMIUM} is missing: .ci/run installs Debian's chromium")
    pytest.skip(
        f"{CHROMIUM} is missing (apt-get install -y --no-install-recommends chromium); "
        "set CI=true to make this a failure"
    )


def _chromium(exe: Path, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile.mkdir(parents=True, exist_ok=True)
    cmd = [
        str(exe),
        "--headless",
        "--no-sandbox",  # (root in a container: the sandbox needs user namespaces)
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    # Its own HOME: Chromium writes caches and crash reports there, and tests run in parallel.
    env = {**os.environ, "HOME": str(profile)}
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=90, env=env, check=False)
    assert out.returncode == 0, f"{cmd} exited {out.returncode}:\n{out.stderr[-3000:]}"
    return out


class _Members(HTMLParser):
    """The member rows of the rendered DOM: {server id: (state shown, replica set shown)}."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, list[str]] = {}
        self._row: str | None = None
        self._cells: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "tr" and a.get("data-member"):
            self._row = a["data-member"]
            self._cells = []
        elif tag == "td" and self._row is not None:
            self._in_cell = True
            self._cells.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "td":
            self._in_cell = False
        elif tag == "tr" and self._row is not None:
            self.rows[self._row] = [c.strip() for c in self._cells]
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._in_cell and self._cells:
            self._cells[-1] += data


def _members(dom: str) -> dict[str, list[str]]:
    parser = _Members()
    parser.feed(dom)
    return parser.rows


def _png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    assert data[12:16] == b"IHDR"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def test_chromium_renders_the_members_of_a_three_node_cluster(tmp_path: Path) -> None:
    exe = _chromium_or_skip()
    procs = ProcCluster(tmp_path, ["a", "b", "c"])
    try:
        a = procs.start("a", app=APP, tunnel=True, replica_set=1).wait_ready()
        for name in ("b", "c"):
            procs.start(name, seed=a, app=APP, tunnel=True, replica_set=2)
        nodes: list[Node] = list(procs.nodes.values())
        for node in nodes:
            node.wait_ready()
        wait_for(lambda: procs.all_see({"a", "b", "c"}), 60, "the cluster to form")
        # Some traffic through a, and through the tunnel to replica set 2.
        with Client(a.url, settings=ClientSettings(max_retries=0, request_timeout=15)) as client:
            for _ in range(10):
                assert client.call(C_Forward, Ping(ID=2), KeyValue).Key in {"b", "c"}

        dom = _chromium(exe, tmp_path / "profile-1", "--dump-dom", a.url + "/status").stdout
        rows = _members(dom)
        assert set(rows) == {"a", "b", "c"}, dom[-3000:]
        # cells: server id, state, replica set, gateway, tunnel, gossip, incarnation
        assert rows["a"][0] == "a (this node)"
        assert {name: cells[1] for name, cells in rows.items()} == dict.fromkeys("abc", "alive")
        assert {name: cells[2] for name, cells in rows.items()} == {"a": "1", "b": "2", "c": "2"}
        for name in "abc":
            assert procs.nodes[name].url.removeprefix("http://") in rows[name][3]
        assert "rony node a" in dom
        assert re.search(r"<th>requests</th><td>(\d+)</td>", dom), "no request count"
        assert "Tunnel peers" in dom

        shot = tmp_path / "status.png"
        _chromium(
            exe,
            tmp_path / "profile-2",
            f"--screenshot={shot}",
            "--window-size=1200,900",
            a.url + "/status",
        )
        assert shot.stat().st_size > 0
        assert _png_size(shot) == (1200, 900)
        if out := os.environ.get("RONY_STATUS_SCREENSHOT"):  # (to look at it by hand)
            Path(out).write_bytes(shot.read_bytes())

        # c leaves (SIGTERM: a graceful stop): a's page shows it as left.
        procs.nodes["c"].stop()
        wait_for(lambda: a.view() == {"a", "b"}, 30, "a to see c gone")
        dom = _chromium(exe, tmp_path / "profile-3", "--dump-dom", a.url + "/status").stdout
        states = {name: cells[1] for name, cells in _members(dom).items()}
        assert states == {"a": "alive", "b": "alive", "c": "left"}
    finally:
        procs.close()
