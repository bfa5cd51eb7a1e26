"""Cluster fault scenarios on real ``rony serve`` processes with real certificates.

Each scenario starts its own nodes (``tests.reliability._faultapp``), injects faults while
client threads keep calling, checks what an operator relies on (raising AssertionError
otherwise) and returns its figures: faults injected, detection and convergence seconds,
acknowledged writes and writes lost. ``tests/reliability/test_cluster_faults.py`` runs them
short, on a fast gossip configuration; ``benchmarks/soak/cluster_faults.py`` runs them long,
repeated, on memberlist's LAN defaults.

Views are read from each node's ``/status.json`` (the gossip table with every member's state:
alive, suspect, dead, left), over HTTP from the node's own network namespace where it runs in
one.
"""

from __future__ import annotations

import json
import signal
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rony.client import Client, ClientSettings
from rony.client.errors import ClientError, RequestTimeout
from rony.core import KeyValue, Ping
from rony.core.errors import RonyError
from rony.server.cluster._ca import init_ca, issue
from tests.cluster._procs import Node, ProcCluster, wait_for
from tests.reliability._faultapp import C_ForwardPut, C_Get, C_Put
from tests.reliability._netns import NetnsLab
from tests.tunnel._tunnelapp import C_Forward, C_ForwardSlow

APP = "tests.reliability._faultapp:app"

# memberlist's LAN timings divided by 2.5 (probe 400 ms): detection in seconds, not tens of
# seconds, and still loose enough for four Python nodes sharing two loaded cores.
FAST_GOSSIP: dict[str, float] = {
    "probe_interval": 0.4,
    "probe_timeout": 0.2,
    "gossip_interval": 0.08,
    "push_pull_interval": 4.0,
    "gossip_to_the_dead_time": 12.0,
    "reconnect_interval": 1.0,
    "join_retry_max": 1.0,
}
TYPED = (RonyError, ClientError)  # what a client may see: the server's Error, or the exchange's


def write_config(folder: Path, gossip: dict[str, float] | None) -> list[str]:
    """``--config FILE`` arguments setting ``gossip`` (None: the LAN defaults, no file). With
    the fast gossip, calls to other nodes time out after 2 s (``remote_timeout``, 5 s by
    default): a call to a peer killed a moment ago is given up on sooner."""
    if not gossip:
        return []
    path = folder / "gossip.toml"
    lines = ["[rony]", "remote_timeout = 2.0", "[rony.gossip_config]"]
    lines += [f"{k} = {v}" for k, v in gossip.items()]
    path.write_text("\n".join(lines) + "\n")
    return ["--config", str(path)]


def read_states(url: str) -> dict[str, str] | None:
    """Member -> state ("alive", "suspect", "dead", "left") from a node's status page; None
    when the node does not answer within a second."""
    try:
        with urllib.request.urlopen(f"{url}/status.json", timeout=1.0) as r:
            snap = json.loads(r.read())
    except (OSError, ValueError):
        return None
    return {m["server_id"]: m["state"] for m in snap["cluster"]["members"]}


def sees_alive(states: dict[str, str] | None, names: Iterable[str]) -> bool:
    """``states`` lists exactly ``names`` as alive (others may be dead, left or gone)."""
    if states is None:
        return False
    return {n for n, s in states.items() if s == "alive"} == set(names)


def not_alive(states: dict[str, str] | None, name: str) -> str | None:
    """How ``states`` sees ``name`` when not alive: "suspect", "dead", "left", "gone"."""
    if states is None:
        return None
    state = states.get(name, "gone")
    return None if state == "alive" else state


# --- load -------------------------------------------------------------------------------------


@dataclass
class Worker:
    """One client thread's record: acknowledged keys by node, errors by type."""

    acked: dict[str, list[str]] = field(default_factory=dict)
    errors: list[BaseException] = field(default_factory=list)
    calls: int = 0
    ok_after_last_error: int = 0
    url: str = ""  # the node it calls now


class Load:
    """``workers`` threads, each with one WebSocket client at a time, each calling ``call``
    (a Put by default) in a loop. A failed call closes that client and the worker moves to the
    next URL of ``urls()``: the way an application fails over to the survivors."""

    def __init__(
        self,
        urls: Callable[[], list[str]],
        workers: int,
        *,
        forward: bool = False,
        request_timeout: float = 2.0,
    ) -> None:
        self._urls = urls
        self._forward = forward
        self._settings = ClientSettings(
            dial_timeout=1.0, request_timeout=request_timeout, max_retries=0, reconnect=False
        )
        self._stop = threading.Event()
        self.workers = [Worker() for _ in range(workers)]
        self._threads = [
            threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(workers)
        ]

    def start(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def _run(self, index: int) -> None:
        me = self.workers[index]
        turn = index
        n = 0
        while not self._stop.is_set():
            urls = self._urls()
            url = me.url = urls[turn % len(urls)]
            try:
                with Client(url, transport="ws", settings=self._settings) as client:
                    while not self._stop.is_set():
                        key = f"w{index}-{n}"
                        n += 1
                        me.calls += 1
                        cid = C_ForwardPut if self._forward else C_Put
                        reply = client.call(cid, KeyValue(Key=key, Value=key), KeyValue)
                        me.acked.setdefault(reply.Key, []).append(key)
                        me.ok_after_last_error += 1
            except BaseException as exc:
                me.errors.append(exc)
                me.ok_after_last_error = 0
                turn += 1

    def total(self) -> int:
        return sum(sum(len(v) for v in w.acked.values()) for w in self.workers)

    def progressed(self, since: list[int], by: int) -> bool:
        """Every worker had ``by`` successes in a row since ``since`` (its last errors)."""
        return all(w.ok_after_last_error >= by for w in self.workers) and self.total() > sum(since)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(10)

    def acked_by_node(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for w in self.workers:
            for node, keys in w.acked.items():
                out.setdefault(node, []).extend(keys)
        return out

    def untyped(self) -> list[BaseException]:
        return [e for w in self.workers for e in w.errors if not isinstance(e, TYPED)]

    def count(self, kind: type[BaseException]) -> int:
        return sum(isinstance(e, kind) for w in self.workers for e in w.errors)

    def error_kinds(self) -> dict[str, int]:
        kinds: dict[str, int] = {}
        for w in self.workers:
            for e in w.errors:
                kinds[type(e).__name__] = kinds.get(type(e).__name__, 0) + 1
        return kinds


def lost_writes(acked: dict[str, list[str]], url_of: Callable[[str], str]) -> int:
    """Acknowledged keys that their node no longer has (one Get each, over one client)."""
    lost = 0
    for node, keys in acked.items():
        with Client(url_of(node), transport="ws", settings=ClientSettings(max_retries=2)) as c:
            for key in keys:
                reply = c.call(C_Get, KeyValue(Key=key), KeyValue)
                assert reply.Key == node, (reply.Key, node)
                lost += reply.Value != key
    return lost


def _start(procs: ProcCluster, names: list[str], extra: list[str], **kw: Any) -> None:
    seed = procs.start(names[0], extra=extra, app=APP, **kw).wait_ready()
    for name in names[1:]:
        procs.start(name, seed=seed, extra=extra, app=APP, **kw)
    for name in names:
        procs.nodes[name].wait_ready()


def _all_converged(procs: ProcCluster, names: list[str]) -> bool:
    return all(sees_alive(read_states(procs.nodes[n].url), names) for n in names)


def _false_deaths(nodes: Iterable[Node], healthy: Iterable[str]) -> list[str]:
    """ "member X failed" lines about a healthy member in the nodes' logs."""
    healthy = set(healthy)
    return [
        f"{node.name}: {line}"
        for node in nodes
        for line in list(node.lines)
        if any(f"member {h} failed" in line for h in healthy)
    ]


# --- kill -9 and SIGSTOP under load -------------------------------------------------------------


def kill_and_stop(
    workdir: Path,
    *,
    gossip: dict[str, float] | None = FAST_GOSSIP,
    workers: int = 6,
    rounds: int = 1,
    deadline: float = 60.0,
    baseline_s: float = 1.0,
) -> dict[str, Any]:
    """Four nodes under a Put load: per round, kill -9 one (the others mark it dead, the load
    moves to the survivors), SIGSTOP another until the others mark it suspect or dead, SIGCONT
    it (it refutes and every node sees it alive again), restart the killed one on its data
    (it is back everywhere). Then every acknowledged write is read back from its node. The
    Put rate is measured over ``baseline_s`` with no fault first, then over the fault rounds."""
    names = ["n0", "n1", "n2", "n3"]
    procs = ProcCluster(workdir, names)
    extra = write_config(workdir, gossip)
    figures: dict[str, Any] = {"kills": 0, "stops": 0, "detect_kill_s": [], "detect_stop_s": []}
    figures.update({"converge_stop_s": [], "converge_restart_s": [], "stop_seen_as": []})
    down: set[str] = set()
    faulted: set[str] = set()
    try:
        _start(procs, names, extra)
        wait_for(lambda: _all_converged(procs, names), deadline, "the four to see each other")

        def urls() -> list[str]:
            return [procs.nodes[n].url for n in names if n not in down] or [procs.nodes["n0"].url]

        load = Load(urls, workers).start()
        try:
            wait_for(lambda: load.progressed([0], 10), deadline, "the load to run")
            # the baseline: the same load on the same cluster with no fault, just before
            t0, n0 = time.monotonic(), load.total()
            time.sleep(baseline_s)  # (a measuring window, not a wait for something)
            t1, n1 = time.monotonic(), load.total()
            figures["puts_per_s_no_fault"] = (n1 - n0) / (t1 - t0)

            def one_round(r: int) -> None:
                victim, frozen = ("n3", "n1") if r % 2 == 0 else ("n2", "n3")
                faulted.update((victim, frozen))
                others = [n for n in names if n not in (victim, frozen)]
                # kill -9: the survivors mark it dead; the load carries on through them
                procs.nodes[victim].proc.kill()
                procs.nodes[victim].proc.wait(10)
                down.add(victim)
                figures["kills"] += 1
                survivors = [n for n in names if n != victim]
                figures["detect_kill_s"].append(
                    wait_for(
                        lambda: all(
                            not_alive(read_states(procs.nodes[n].url), victim) in ("dead", "gone")
                            for n in survivors
                        ),
                        deadline,
                        f"{victim} to be marked dead",
                    )
                )
                before = [load.total()]
                wait_for(lambda: load.progressed(before, 5), deadline, "clients to recover")

                # SIGSTOP: marked suspect (or dead) by the others; SIGCONT: alive everywhere
                node = procs.nodes[frozen]
                timeouts = load.count(RequestTimeout)
                node.signal(signal.SIGSTOP)
                down.add(frozen)
                figures["stops"] += 1
                seen: dict[str, str] = {}

                def marked() -> bool:
                    for n in others:
                        state = not_alive(read_states(procs.nodes[n].url), frozen)
                        if state is None:
                            return False
                        seen[n] = state
                    return True

                def felt() -> bool:
                    # and every client that was calling it timed out (and moved on)
                    on_it = any(w.url == node.url for w in load.workers)
                    return not on_it or load.count(RequestTimeout) > timeouts

                try:
                    figures["detect_stop_s"].append(
                        wait_for(marked, deadline, f"{frozen} to be suspected")
                    )
                    wait_for(felt, deadline, f"clients of {frozen} to time out")
                finally:
                    node.signal(signal.SIGCONT)
                figures["stop_seen_as"].append(sorted(set(seen.values())))
                down.discard(frozen)
                figures["converge_stop_s"].append(
                    wait_for(
                        lambda: _all_converged(procs, survivors),
                        deadline,
                        f"{frozen} alive again everywhere",
                    )
                )
                # restart the killed node on its data folder: back everywhere
                procs.nodes[victim].stop()
                started = time.monotonic()  # (from the exec: includes Python's start-up)
                procs.start(victim, seed=procs.nodes[others[0]], extra=extra, app=APP)
                procs.nodes[victim].wait_ready()
                down.discard(victim)
                wait_for(lambda: _all_converged(procs, names), deadline, "all four again")
                figures["converge_restart_s"].append(time.monotonic() - started)
                before = [load.total()]
                wait_for(lambda: load.progressed(before, 5), deadline, "clients on all four")

            for r in range(rounds):
                one_round(r)
            figures["puts_per_s_with_faults"] = (load.total() - n1) / (time.monotonic() - t1)
        finally:
            load.stop()
        untyped = load.untyped()
        assert not untyped, f"errors that are not typed: {untyped[:5]}"
        acked = load.acked_by_node()
        figures["acked_writes"] = sum(len(v) for v in acked.values())
        figures["client_errors"] = load.error_kinds()
        figures["writes_lost"] = lost_writes(acked, lambda n: procs.nodes[n].url)
        # a node never faulted is never declared dead (a frozen one may be: it was silent)
        figures["false_deaths"] = _false_deaths(procs.live(), set(names) - faulted)
        return figures
    finally:
        procs.close()


# --- a tunnel peer dies under load --------------------------------------------------------------


def tunnel_peer_death(
    workdir: Path,
    *,
    gossip: dict[str, float] | None = FAST_GOSSIP,
    workers: int = 4,
    kills: int = 1,
    deadline: float = 60.0,
) -> dict[str, Any]:
    """a (replica set 1) forwards Puts to replica set 2 (b, c) through the tunnel, under load
    from ``workers`` threads, while a call pinned to b is in flight. b is killed (kill -9): the
    pinned call fails typed, the Puts go on through c (each forwarded Put is tried on two
    members, so the load sees few or no errors); b restarts on its data and gets tunnel calls
    again. Every Put acknowledged by b or c is still in its store."""
    names = ["a", "b", "c"]
    procs = ProcCluster(workdir, names)
    extra = write_config(workdir, gossip)
    figures: dict[str, Any] = {"kills": 0, "pinned_call_errors": [], "reroute_s": []}
    figures["pinned_fail_s"] = []
    try:
        kw: dict[str, Any] = {"tunnel": True}
        a = procs.start("a", extra=extra, app=APP, replica_set=1, **kw).wait_ready()
        for name in ("b", "c"):
            procs.start(name, seed=a, extra=extra, app=APP, replica_set=2, **kw).wait_ready()
        wait_for(lambda: _all_converged(procs, names), deadline, "the cluster to form")
        load = Load(lambda: [a.url], workers, forward=True, request_timeout=8.0).start()
        try:
            wait_for(lambda: load.progressed([0], 10), deadline, "the load to run")

            def one_kill() -> None:
                b = procs.nodes["b"]
                failure: list[BaseException] = []
                failed_at: list[float] = []
                settings = ClientSettings(max_retries=0, request_timeout=15.0)

                def pinned() -> None:
                    try:
                        with Client(a.url, settings=settings) as client:
                            client.call(C_ForwardSlow, KeyValue(Key="b", Value="8000"), KeyValue)
                    except BaseException as exc:
                        failed_at.append(time.monotonic())
                        failure.append(exc)

                caller = threading.Thread(target=pinned)
                caller.start()
                wait_for(lambda: any("b" in w.acked for w in load.workers), deadline, "b used")
                b.proc.kill()
                b.proc.wait(10)
                killed_at = time.monotonic()
                figures["kills"] += 1
                # the next forwarded calls reach c (the first may try b, time out, then c)
                with Client(a.url, settings=settings) as client:
                    for i in range(5):
                        assert client.call(C_Forward, Ping(ID=2), KeyValue).Key == "c"
                        if i == 0:
                            figures["reroute_s"].append(time.monotonic() - killed_at)
                caller.join(30)
                assert len(failure) == 1, "the call in flight on the killed peer did not fail"
                assert isinstance(failure[0], TYPED), repr(failure[0])
                figures["pinned_call_errors"].append(type(failure[0]).__name__)
                figures["pinned_fail_s"].append(failed_at[0] - killed_at)
                # b comes back on its data folder and gets tunnel calls again
                b.stop()
                procs.start("b", seed=a, extra=extra, app=APP, replica_set=2, **kw).wait_ready()
                wait_for(lambda: _all_converged(procs, names), deadline, "b back everywhere")
                mark = sum(len(w.acked.get("b", [])) for w in load.workers)
                wait_for(
                    lambda: sum(len(w.acked.get("b", [])) for w in load.workers) > mark + 5,
                    deadline,
                    "tunnel calls to reach the restarted b",
                )

            for _ in range(kills):
                one_kill()
        finally:
            load.stop()
        untyped = load.untyped()
        assert not untyped, f"errors that are not typed: {untyped[:5]}"
        acked = load.acked_by_node()
        figures["acked_writes"] = sum(len(v) for v in acked.values())
        figures["client_errors"] = load.error_kinds()
        figures["writes_lost"] = lost_writes(acked, lambda n: procs.nodes[n].url)
        return figures
    finally:
        procs.close()


# --- a node's wall clock jumps ------------------------------------------------------------------


def clock_jump(
    workdir: Path, *, jumps: Iterable[float] = (3600.0, -7200.0), hold: float = 4.0
) -> dict[str, Any]:
    """Three nodes; n2 runs under ``_clockshift``. Its wall clock jumps by each of ``jumps``
    (seconds, cumulative) and is held there ``hold`` seconds: nobody is declared dead, no
    suspicion lasts (the gossip's timers run on the monotonic clock). Then n2 is killed and
    restarted with its wall clock a day behind: its new incarnation (wall-clock seconds) is
    lower than its previous life's, and it must still be back alive everywhere (it refutes the
    dead record with a higher incarnation)."""
    names = ["n0", "n1", "n2"]
    procs = ProcCluster(workdir, names)
    extra = write_config(workdir, FAST_GOSSIP)
    clock = workdir / "clock"
    clock.write_text("0")
    figures: dict[str, Any] = {"jumps": [], "suspect_polls": [], "restart_back_s": None}
    shifted_extra = [*extra, "--clock-file", str(clock)]
    shifted = {"launcher": "tests.reliability._clockshift", "extra": shifted_extra}
    try:
        seed = procs.start("n0", extra=extra, app=APP).wait_ready()
        procs.start("n1", seed=seed, extra=extra, app=APP).wait_ready()
        procs.start("n2", seed=seed, app=APP, **shifted).wait_ready()
        wait_for(lambda: _all_converged(procs, names), 60, "the three to see each other")
        n2 = procs.nodes["n2"]
        offset = 0.0
        for jump in jumps:
            offset += jump
            clock.write_text(str(offset))
            n2.signal(signal.SIGUSR1)

            def shifted_now(offset: float = offset) -> bool:
                try:
                    with urllib.request.urlopen(f"{n2.url}/status.json", timeout=1.0) as r:
                        snap = json.loads(r.read())
                except OSError:
                    return False
                return bool(abs(snap["time"] - time.time() - offset) < 60)

            wait_for(shifted_now, 10, f"n2's wall clock to read {offset:+.0f} s")
            # Held: nobody dead, and a suspicion no more than a passing one (a node starved of
            # CPU by the rest of the machine may be late to an ack; a clock the gossip read
            # would make it last: each jump's window is judged alone).
            polls = suspected = 0
            end = time.monotonic() + hold
            while time.monotonic() < end:
                for name in names:
                    states = read_states(procs.nodes[name].url)
                    assert states is not None, f"{name} stopped answering"
                    bad = {n: s for n, s in states.items() if s not in ("alive", "suspect")}
                    assert not bad, f"after a {jump:+.0f} s jump {name} sees {bad}"
                    polls += 1
                    suspected += "suspect" in states.values()
                time.sleep(0.1)  # (the poll's pace; the condition is checked every time)
            assert suspected <= polls // 4, f"{jump:+.0f} s: {suspected} of {polls} polls suspect"
            figures["jumps"].append(jump)
            figures["suspect_polls"].append(f"{suspected}/{polls}")
        assert not _false_deaths(procs.live(), names)
        with urllib.request.urlopen(f"{seed.url}/status.json", timeout=2) as r:
            snap = json.loads(r.read())
        incarnations = [
            m["incarnation"] for m in snap["cluster"]["members"] if m["server_id"] == "n2"
        ]
        # restart n2 a day in the past: a lower incarnation than the dead record of its last life
        n2.proc.kill()
        n2.proc.wait(10)
        wait_for(lambda: not_alive(read_states(seed.url), "n2") in ("dead", "gone"), 60, "n2 dead")
        clock.write_text(str(-86400.0))
        procs.nodes["n2"].stop()
        started = time.monotonic()
        procs.start("n2", seed=seed, app=APP, **shifted).wait_ready()
        wait_for(lambda: _all_converged(procs, names), 60, "n2, restarted a day behind, to be back")
        figures["restart_back_s"] = time.monotonic() - started
        with urllib.request.urlopen(f"{seed.url}/status.json", timeout=2) as r:
            snap = json.loads(r.read())
        now = [m["incarnation"] for m in snap["cluster"]["members"] if m["server_id"] == "n2"]
        figures["incarnations"] = (incarnations, now)
        # its clock gave a lower incarnation than its last life's; it outranked it by refuting
        assert incarnations, "n2 was not in the table"
        assert now, "n2 is not in the table"
        assert now[0] > incarnations[0], figures["incarnations"]
        return figures
    finally:
        procs.close()


# --- partition and loss, in network namespaces ----------------------------------------------------


class NsCluster:
    """Nodes in network namespaces of one ``NetnsLab``: each node's gossip on its namespace's
    address, its gateway on the namespace's own 127.0.0.1 (read through ``lab.run``)."""

    def __init__(self, workdir: Path, lab: NetnsLab, names: list[str]) -> None:
        self.lab = lab
        self.procs = ProcCluster(workdir)  # (no certificates yet: they name the addresses)
        self.names = names
        self.addrs = {n: lab.add_node(n) for n in names}
        # each node's certificate names its own namespace address, as a real node's names its
        # host's (gRPC checks the address it dials against the certificate)
        init_ca(self.procs.certs)
        for name, addr in self.addrs.items():
            issue(self.procs.certs, name, hosts=[addr, "127.0.0.1"])

    def start(self, extra: list[str]) -> None:
        seed: Node | None = None
        for name in self.names:
            args = [*extra, "--gossip", f"{self.addrs[name]}:0"]
            node = self.procs.start(name, seed=seed, extra=args, app=APP, wrap=self.lab.wrap(name))
            node.wait_ready()
            seed = seed or node

    def states(self, name: str) -> dict[str, str] | None:
        url = self.procs.nodes[name].url
        return self.lab.run(name, lambda: read_states(url))

    def converged(self, names: list[str] | None = None) -> bool:
        names = names or self.names
        return all(sees_alive(self.states(n), names) for n in names)

    def close(self) -> None:
        self.procs.close()


def partition_and_heal(
    workdir: Path,
    lab: NetnsLab,
    *,
    gossip: dict[str, float] | None = FAST_GOSSIP,
    cycles: int = 1,
    deadline: float = 60.0,
) -> dict[str, Any]:
    """Four nodes in their own namespaces; the bridge is split 2 + 2: each half marks the other
    dead (and keeps its own half alive); healed: every node sees all four alive again."""
    names = ["n0", "n1", "n2", "n3"]
    half_a, half_b = names[:2], names[2:]
    ns = NsCluster(workdir, lab, names)
    figures: dict[str, Any] = {"partitions": 0, "split_detect_s": [], "heal_converge_s": []}
    try:
        ns.start(write_config(workdir, gossip))
        wait_for(ns.converged, deadline, "the four to see each other")
        for _ in range(cycles):
            lab.partition(half_b)
            figures["partitions"] += 1

            def split() -> bool:
                for mine, theirs in ((half_a, half_b), (half_b, half_a)):
                    for n in mine:
                        states = ns.states(n)
                        if not sees_alive(states, mine):
                            return False
                        assert states is not None
                        if any(not_alive(states, t) not in ("dead", "gone") for t in theirs):
                            return False
                return True

            figures["split_detect_s"].append(
                wait_for(split, deadline, "each half to see the other dead")
            )
            lab.heal()
            figures["heal_converge_s"].append(
                wait_for(ns.converged, deadline, "the halves to merge")
            )
        return figures
    finally:
        ns.close()


def loss_no_false_deaths(
    workdir: Path,
    lab: NetnsLab,
    *,
    percent: float = 10.0,
    seconds: float = 15.0,
    gossip: dict[str, float] | None = None,
) -> dict[str, Any]:
    """Four nodes, each dropping ``percent`` % of the packets it sends, for ``seconds``: no
    member is ever declared dead (Lifeguard: a slow ack is a suspicion that gets refuted,
    not a death); suspicions are counted from the nodes' status pages."""
    names = ["n0", "n1", "n2", "n3"]
    ns = NsCluster(workdir, lab, names)
    figures: dict[str, Any] = {"loss_percent": percent, "seconds": seconds}
    try:
        ns.start(write_config(workdir, gossip))
        wait_for(ns.converged, 60, "the four to see each other")
        tools = {lab.set_loss(n, percent) for n in names}
        figures["tool"] = ", ".join(sorted(tools))
        suspect_polls = polls = 0
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            for n in names:
                states = ns.states(n)
                polls += 1
                if states is None:
                    continue  # (its gateway is on the namespace's lo: no loss there)
                bad = {m: s for m, s in states.items() if s not in ("alive", "suspect")}
                assert not bad, f"{n} sees {bad} under {percent} % loss"
                suspect_polls += any(s == "suspect" for s in states.values())
            time.sleep(0.2)  # (the poll's pace)
        figures["false_deaths"] = _false_deaths(ns.procs.live(), names)
        assert not figures["false_deaths"], figures["false_deaths"]
        figures["polls_with_a_suspect"] = f"{suspect_polls}/{polls}"
        return figures
    finally:
        ns.close()
