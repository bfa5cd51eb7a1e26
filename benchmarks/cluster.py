"""The gossip membership: simulated at scale, and real ``rony serve`` processes on 127.0.0.1.

    hatch run bench:cluster                 # everything (~2 minutes)
    hatch run bench:cluster --only sim      # the simulation parts (seconds)
    hatch run bench:cluster --only real --trials 7

Cases (goal in brackets):
  traffic     gossip messages and bytes sent per node per second in an idle, converged
              cluster of n = 10 / 100 / 200 simulated nodes, LAN defaults      [flat in n]
  detect-sim  time from a crash to every other node dropping it, n = 5, 40 seeded runs
              (SWIM + Lifeguard, memberlist's LAN defaults: ~5-8 s)  [median <= 6 s]
  starved     false deaths while one of 10 nodes does everything 1.5 s late for 5 s,
              20 seeded runs                                                    [0]
  detect      the same detection time with 5 real processes over mutual TLS: kill -9 one,
              poll GetAllNodes on the other four; restart it and do it again [median <= 6 s]
  cpu         CPU of an idle node of that 5-node cluster, as % of one core, beside an idle
              node without a cluster measured in the same run              [<= 2 % of a core]
  exchange    gossip Exchange calls/s (64 in flight) through our servicer and state machine
              vs a raw grpc.aio unary echo of the same packet bytes, same run (information:
              gossip needs < 50 calls/s per node)
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rony.server.cluster._swim import EventKind  # noqa: E402
from rony.server.cluster.sim import SimNetwork  # noqa: E402


def _sim_cluster(n: int, seed: int, **kw: Any) -> SimNetwork:
    net = SimNetwork(seed=seed, **kw)
    for i in range(n):
        net.add(f"n{i}", join="n0" if i else None)
        net.run_for(0.01)
    if not net.run_until(net.now + 120, stop=net.converged, every=0.5):
        raise SystemExit(f"n={n}: the simulated cluster did not converge")
    return net


def traffic() -> None:
    print("traffic: idle converged cluster, per node per second (60 s simulated)")
    for n in (10, 100, 200):
        net = _sim_cluster(n, seed=n)
        net.run_for(40)  # past the join's gossip storm
        before = {k: (v.packets_sent, v.bytes_sent) for k, v in net.nodes.items()}
        net.run_for(60)
        pk = [(v.packets_sent - before[k][0]) / 60 for k, v in net.nodes.items()]
        by = [(v.bytes_sent - before[k][1]) / 60 for k, v in net.nodes.items()]
        print(
            f"  n={n:<4} messages/s median {statistics.median(pk):5.2f} (max {max(pk):5.2f})"
            f"   bytes/s median {statistics.median(by):7.1f} (max {max(by):7.1f})"
        )


def detect_sim(runs: int = 40) -> None:
    times = []
    for seed in range(runs):
        net = _sim_cluster(5, seed=seed, latency=0.0003)
        net.run_for(5 + (seed % 10) * 0.1)
        net.crash("n3")
        t0 = net.now
        if not net.run_until(t0 + 120, stop=lambda n=net: len(n.declared_dead("n3")) == 4):
            raise SystemExit("a crash was never detected")
        times.append(net.now - t0)
    q = statistics.quantiles(times, n=10)
    print(
        f"detect-sim: n=5, {runs} runs: median {statistics.median(times):.2f} s, "
        f"p10 {q[0]:.2f} s, p90 {q[-1]:.2f} s, max {max(times):.2f} s   [goal median <= 6 s]"
    )


def starved(runs: int = 20) -> None:
    false_deaths = 0
    for seed in range(runs):
        net = _sim_cluster(10, seed=100 + seed)
        t0 = net.now
        net.set_lag("n3", 1.5)
        net.run_for(5)
        net.set_lag("n3", 0.0)
        net.run_for(60)
        false_deaths += sum(
            1
            for node in net.nodes.values()
            for t, ev in node.events
            if ev.kind is EventKind.FAIL and t >= t0
        )
    print(f"starved: {runs} runs, one node 1.5 s late for 5 s: {false_deaths} false deaths [0]")


# --- real processes -----------------------------------------------------------------------------


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def real(trials: int, idle: float) -> None:
    from tests.cluster._procs import ProcCluster, wait_for

    with tempfile.TemporaryDirectory(prefix="rony-bench-cluster-") as tmp:
        procs = ProcCluster(Path(tmp), [f"n{i}" for i in range(5)])
        try:
            names = {f"n{i}" for i in range(5)}
            seed = procs.start_joined([f"n{i}" for i in range(5)])

            # cpu: idle cluster node vs an idle node without a cluster, same window
            lone = _plain_node(Path(tmp))
            time.sleep(3)  # let start-up work finish before the window
            pids = {n: procs.nodes[n].proc.pid for n in names} | {"plain": lone.pid}
            before = {k: _cpu_seconds(p) for k, p in pids.items()}
            t0 = time.monotonic()
            time.sleep(idle)
            wall = time.monotonic() - t0
            used = {k: (_cpu_seconds(p) - before[k]) / wall * 100 for k, p in pids.items()}
            lone.send_signal(signal.SIGTERM)
            lone.wait(15)
            cluster_cpu = statistics.median(used[n] for n in names)
            print(
                f"cpu: idle node of a 5-node cluster {cluster_cpu:.2f} % of a core "
                f"(range {min(used[n] for n in names):.2f}-{max(used[n] for n in names):.2f}); "
                f"idle node without a cluster {used['plain']:.2f} %; "
                f"gossip's share {cluster_cpu - used['plain']:.2f} %   [goal <= 2 %]"
            )

            # detect: kill -9, time until the four others drop it; restart; again
            times, seen = [], []
            for trial in range(trials):
                victim = f"n{1 + trial % 4}"
                others = [procs.nodes[n] for n in names if n != victim]
                marks = {o.name: len(o.lines) for o in others}
                procs.nodes[victim].proc.kill()
                killed_at, start = time.time(), time.monotonic()
                wait_for(
                    lambda victim=victim, others=others: all(
                        (v := o.view()) is not None and victim not in v for o in others
                    ),
                    60,
                    f"{victim} to be dropped",
                    every=0.05,
                )
                seen.append(time.monotonic() - start)
                # when each node's membership dropped it, from its log's timestamps
                verdicts = [_failed_at(o.lines[marks[o.name] :], victim) for o in others]
                times.append(max(verdicts) - killed_at)
                procs.nodes[victim].stop()
                procs.start(victim, seed=seed).wait_ready()
                wait_for(lambda: procs.all_see(names), 60, f"{victim} to come back")
                time.sleep(2)
            print(
                f"detect: n=5 real processes, mutual TLS, {trials} kill -9: the last of the "
                f"four drops it after a median {statistics.median(times):.2f} s (range "
                f"{min(times):.2f}-{max(times):.2f})   [goal median <= 6 s]; a client polling "
                f"GetAllNodes on all four sees it gone after {statistics.median(seen):.2f} s"
            )
        finally:
            procs.close()


_FAILED = re.compile(r"^(\S+ \S+) INFO rony\.server\.cluster: gossip: member (\S+) failed")


def _failed_at(lines: list[str], victim: str) -> float:
    """The wall-clock time of the log line in which a node declared ``victim`` failed."""
    for line in lines:
        m = _FAILED.match(line)
        if m and m.group(2) == victim:
            return datetime.datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
    raise AssertionError(f"no 'member {victim} failed' line")


def _plain_node(workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rony.server.cli",
            "serve",
            "tests.client._nodeapp:app",
            "--gateway",
            "127.0.0.1:0",
            "--data-dir",
            str(workdir / "data-plain"),
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


# --- the Exchange path --------------------------------------------------------------------------


async def _exchange(seconds: float) -> None:
    import grpc

    from rony.server.cluster._cluster import Cluster
    from rony.server.pb import gossip_pb2 as pb

    ours = Cluster(server_id="bench", replica_set=0, bind=("127.0.0.1", 0))
    await ours.start()
    assert ours.address is not None

    async def echo(request: bytes, context: Any) -> bytes:
        return request

    raw = grpc.aio.server()
    raw.add_generic_rpc_handlers(
        [
            grpc.method_handlers_generic_handler(
                "rony.gossip.Gossip",
                {"Exchange": grpc.unary_unary_rpc_method_handler(echo)},
            )
        ]
    )
    raw_port = raw.add_insecure_port("127.0.0.1:0")
    await raw.start()
    ping = pb.Packet(
        Cluster="rony",
        From="client",
        FromAddr="127.0.0.1:1",
        Messages=[pb.Message(Ping=pb.Ping(SeqNo=1, Node="bench"))],
    ).SerializeToString()

    async def load(port: int) -> float:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            call = channel.unary_unary("/rony.gossip.Gossip/Exchange")
            done = 0
            end = time.monotonic() + seconds

            async def worker() -> None:
                nonlocal done
                while time.monotonic() < end:
                    await call(ping)
                    done += 1

            await asyncio.gather(*(worker() for _ in range(64)))
            return done / seconds

    rounds = []
    for _ in range(3):
        a = await load(ours.address[1])
        b = await load(raw_port)
        rounds.append((a, b))
    await ours.stop()
    await raw.stop(0)
    ratios = [a / b for a, b in rounds]
    print(
        f"exchange: ours {statistics.median(a for a, _ in rounds):,.0f} calls/s, raw grpc.aio "
        f"echo {statistics.median(b for _, b in rounds):,.0f} calls/s: "
        f"{statistics.median(ratios):.2f}x (rounds {min(ratios):.2f}-{max(ratios):.2f})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--only", choices=["sim", "real", "exchange"])
    parser.add_argument("--trials", type=int, default=5, help="kill -9 trials (real)")
    parser.add_argument("--idle", type=float, default=20.0, help="seconds of idle CPU window")
    args = parser.parse_args()
    if args.only in (None, "sim"):
        traffic()
        detect_sim()
        starved()
    if args.only in (None, "exchange"):
        asyncio.run(_exchange(2.0))
    if args.only in (None, "real"):
        real(args.trials, args.idle)


if __name__ == "__main__":
    main()
