"""Acceptance: real ``rony serve`` processes on 127.0.0.1 with real certificates of a real CA.

What an operator relies on: nodes join through one seed; a killed node disappears from
GetAllNodes everywhere; a node stopped with SIGTERM leaves (seen as left, not failed); a node
restarted under the same id comes back; a node frozen for 3 s (SIGSTOP) is never dropped; a
node whose certificate another CA signed, or that has none, is never admitted.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from rony.server.cluster._ca import init_ca, issue
from tests.cluster._procs import ProcCluster, wait_for

pytestmark = pytest.mark.slow

JOIN = 30.0  # generous deadlines: the whole suite shares two cores with these processes
DETECT = 40.0


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[ProcCluster]:
    cluster = ProcCluster(tmp_path, [f"n{i}" for i in range(5)])
    try:
        yield cluster
    finally:
        cluster.close()


def test_five_nodes_kill_leave_restart_and_pause(procs: ProcCluster) -> None:
    names = {f"n{i}" for i in range(5)}
    seed = procs.start_joined([f"n{i}" for i in range(5)], JOIN)
    edges = {e.ServerID: list(e.HostPorts) for e in seed.edges().Nodes}
    assert edges["n3"] == [procs.nodes["n3"].url.removeprefix("http://")]

    # kill -9: every other node drops it from GetAllNodes
    procs.nodes["n4"].proc.kill()
    procs.nodes["n4"].proc.wait(10)
    names.discard("n4")
    wait_for(lambda: procs.all_see(names), DETECT, "the killed node to be dropped everywhere")

    # SIGTERM: a graceful leave, which the others see as "left", never "failed"
    leaver = procs.nodes["n3"]
    leaver.signal(signal.SIGTERM)
    names.discard("n3")
    took = wait_for(
        lambda: procs.all_see(names, [procs.nodes[n] for n in names]), 10, "n3 to be seen leaving"
    )
    assert leaver.proc.wait(15) == 0
    assert took < 5.0, f"a leave took {took:.1f} s to be seen"
    for name in names:
        out = procs.nodes[name].output()
        assert "member n3 left" in out, name
        assert "member n3 failed" not in out, name

    # restart with the same id (a new gossip port): it is back everywhere
    procs.nodes["n4"].stop()
    procs.start("n4", seed=seed).wait_ready()
    names.add("n4")
    wait_for(lambda: procs.all_see(names), JOIN, "the restarted node to be back")

    # SIGSTOP for 3 s, then SIGCONT: never dropped
    frozen = procs.nodes["n2"]
    others = [procs.nodes[n] for n in names if n != "n2"]
    frozen.signal(signal.SIGSTOP)
    thawed_at = time.monotonic() + 3.0
    try:
        while time.monotonic() < thawed_at + 10.0:
            if time.monotonic() >= thawed_at and frozen.proc.poll() is None:
                frozen.signal(signal.SIGCONT)
            for node in others:
                view = node.view()
                assert view is None or "n2" in view, f"{node.name} dropped the paused node"
            time.sleep(0.2)
    finally:
        frozen.signal(signal.SIGCONT)
    wait_for(lambda: procs.all_see(names), JOIN, "all to see all after the pause")
    for node in others:
        assert "member n2 failed" not in node.output()


def test_a_node_of_another_ca_or_without_tls_is_never_admitted(tmp_path: Path) -> None:
    procs = ProcCluster(tmp_path, ["a", "b", "c"])
    rogue_ca = tmp_path / "rogue"
    init_ca(rogue_ca)
    issue(rogue_ca, "rogue")
    try:
        seed = procs.start("a").wait_ready()
        rogue = procs.start("rogue", seed=seed, certs=rogue_ca).wait_ready()
        plain = procs.start("plain", seed=seed, certs=None, extra=["--insecure-cluster"])
        plain.wait_ready()
        # A node of our CA that starts after them joins: by then the rogues had their chance.
        procs.start("b", seed=seed).wait_ready()
        wait_for(lambda: seed.view() == {"a", "b"}, JOIN, "the legitimate node to join")
        procs.start("c", seed=seed).wait_ready()
        legit = [seed, procs.nodes["b"], procs.nodes["c"]]
        wait_for(lambda: procs.all_see({"a", "b", "c"}, legit), JOIN, "the third to join")
        assert rogue.view() == {"rogue"}
        assert plain.view() == {"plain"}
        assert "member rogue" not in seed.output()
        assert "member plain" not in seed.output()
        assert "WITHOUT TLS" in plain.output()  # an insecure cluster says so at start
    finally:
        procs.close()


def test_a_cluster_without_tls_needs_the_explicit_flag(tmp_path: Path) -> None:
    procs = ProcCluster(tmp_path)
    node = procs.start("x", certs=None)
    assert node.proc.wait(30) == 2
    node.stop()
    out = node.output()
    assert "--insecure-cluster" in out
    assert "Traceback" not in out


def test_a_node_whose_gossip_name_is_refused_says_why(tmp_path: Path) -> None:
    procs = ProcCluster(tmp_path)
    # (the last --server-id wins; the node's data folder keeps its short name)
    node = procs.start("long", certs=None, extra=["--insecure-cluster", "--server-id", "x" * 300])
    assert node.proc.wait(30) == 2
    node.stop()
    assert "1 to 256 characters" in node.output()
    assert "Traceback" not in node.output()
