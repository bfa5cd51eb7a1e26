"""Cluster faults, long: the scenarios of tests/reliability/_faults.py, repeated, on real
``rony serve`` processes with real certificates, on memberlist's LAN gossip defaults.

    hatch run soak:cluster-faults                       # everything (~8 minutes on 2 cores)
    hatch run soak:cluster-faults --only partition --repeat 3
    hatch run soak:cluster-faults --fast                # the tests' fast gossip timings

Scenarios (goal in brackets; each stops by itself after ``--repeat`` rounds):
  kill-stop   4 nodes under a durable Put load (6 client threads): per round kill -9 one, SIGSTOP
              another until it is suspected and its clients timed out, SIGCONT it, restart the
              killed one on its data. Detection (dead / suspect everywhere), convergence, Put
              rate with faults vs the same load with none just before (the baseline, same
              run)                                          [writes lost 0, untyped errors 0]
  tunnel      replica set 1 forwards Puts to replica set 2 (b, c) under load; per round b is
              killed with a call pinned to it in flight, then restarted  [writes lost 0, the
              pinned call fails typed]
  clock       a node's wall clock jumps +1 h, -2 h, +25 h, -48 h, held each time; then it
              restarts a day behind (a lower incarnation than its last life)   [no death,
              no lasting suspicion; back alive everywhere]
  partition   4 nodes in network namespaces, split 2 + 2 and healed, per round   [each half
              sees the other dead; all see all alive after healing]
  loss        4 nodes in namespaces, 10 % of every node's packets dropped for --loss-seconds
                                                                          [no death at all]
Namespaces need root and iproute2 (iptables where the kernel has no netem): the namespace
scenarios report "skipped" with the reason otherwise.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.reliability import _faults  # noqa: E402
from tests.reliability._netns import NetnsLab  # noqa: E402

SCENARIOS = ("kill-stop", "tunnel", "clock", "partition", "loss")


def _spread(values: list[float]) -> str:
    if not values:
        return "-"
    return f"median {statistics.median(values):.2f} s, max {max(values):.2f} s (n={len(values)})"


def _run(name: str, fn: Callable[[Path], dict[str, Any]]) -> tuple[dict[str, Any] | None, str]:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"rony-soak-{name}-") as d:
        try:
            figures = fn(Path(d))
        except AssertionError as exc:
            traceback.print_exc()
            return None, f"FAILED after {time.monotonic() - started:.0f} s: {exc}"
    return figures, f"ok in {time.monotonic() - started:.0f} s"


def _in_lab(fn: Callable[[Path, NetnsLab], dict[str, Any]]) -> Callable[[Path], dict[str, Any]]:
    def run(d: Path) -> dict[str, Any]:
        lab = NetnsLab()
        try:
            return fn(d, lab)
        finally:
            lab.close()

    return run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--only", choices=SCENARIOS, action="append", help="scenarios to run")
    ap.add_argument("--repeat", type=int, default=5, help="rounds per scenario (default 5)")
    ap.add_argument("--loss-seconds", type=float, default=60.0, help="loss window (default 60)")
    ap.add_argument("--fast", action="store_true", help="the tests' fast gossip timings")
    args = ap.parse_args()
    gossip = _faults.FAST_GOSSIP if args.fast else None
    n = args.repeat
    why = NetnsLab.available()
    plan: dict[str, Callable[[Path], dict[str, Any]]] = {
        "kill-stop": lambda d: _faults.kill_and_stop(
            d, gossip=gossip, rounds=n, deadline=120.0, baseline_s=5.0
        ),
        "tunnel": lambda d: _faults.tunnel_peer_death(d, gossip=gossip, kills=n, deadline=120.0),
        "clock": lambda d: _faults.clock_jump(
            d, jumps=(3600.0, -7200.0, 86400.0 + 3600.0, -2 * 86400.0), hold=10.0
        ),
        "partition": _in_lab(
            lambda d, lab: _faults.partition_and_heal(d, lab, gossip=gossip, cycles=n, deadline=120)
        ),
        "loss": _in_lab(
            lambda d, lab: _faults.loss_no_false_deaths(
                d, lab, percent=10.0, seconds=args.loss_seconds, gossip=gossip
            )
        ),
    }
    print(f"gossip: {'fast (tests)' if args.fast else 'LAN defaults'}; {n} rounds per scenario")
    print("(a shared 2-core machine: other work may be running; times are of this run)\n")
    failed = False
    for name in args.only or SCENARIOS:
        if name in ("partition", "loss") and why is not None:
            print(f"{name:10} skipped: {why}\n")
            continue
        figures, verdict = _run(name, plan[name])
        print(f"{name:10} {verdict}")
        failed |= figures is None
        if figures is None:
            continue
        if name == "kill-stop":
            ratio = figures["puts_per_s_with_faults"] / figures["puts_per_s_no_fault"]
            print(
                f"  faults injected and survived: {figures['kills']} kill -9, "
                f"{figures['stops']} SIGSTOP ({figures['stop_seen_as']})"
            )
            print(f"  kill -9 -> dead everywhere:   {_spread(figures['detect_kill_s'])}")
            print(f"  SIGSTOP -> suspected:         {_spread(figures['detect_stop_s'])}")
            print(f"  SIGCONT -> alive everywhere:  {_spread(figures['converge_stop_s'])}")
            print(f"  restart -> all see all:       {_spread(figures['converge_restart_s'])}")
            print(
                f"  acknowledged writes {figures['acked_writes']}, lost {figures['writes_lost']}; "
                f"client errors {figures['client_errors']}; false deaths "
                f"{len(figures['false_deaths'])}"
            )
            print(
                f"  Puts/s with faults {figures['puts_per_s_with_faults']:.0f} vs "
                f"{figures['puts_per_s_no_fault']:.0f} with none (baseline): {ratio:.2f}x"
            )
        elif name == "tunnel":
            print(f"  faults injected and survived: {figures['kills']} kill -9 of a tunnel peer")
            print(
                f"  the pinned call failed with:  {sorted(set(figures['pinned_call_errors']))}, "
                f"after {_spread(figures['pinned_fail_s'])}"
            )
            print(f"  first forwarded call on c:    {_spread(figures['reroute_s'])}")
            print(
                f"  acknowledged writes {figures['acked_writes']}, lost {figures['writes_lost']}; "
                f"load errors {figures['client_errors']}"
            )
        elif name == "clock":
            print(f"  wall-clock jumps survived:    {len(figures['jumps'])} ({figures['jumps']} s)")
            print(f"  status polls with a suspect:  {figures['suspect_polls']} (per jump)")
            print(
                f"  restart a day behind -> back: {figures['restart_back_s']:.2f} s "
                f"(incarnation {figures['incarnations'][0]} -> {figures['incarnations'][1]})"
            )
        elif name == "partition":
            print(f"  partitions made and healed:   {figures['partitions']}")
            print(f"  split -> other half dead:     {_spread(figures['split_detect_s'])}")
            print(f"  heal -> all see all alive:    {_spread(figures['heal_converge_s'])}")
        elif name == "loss":
            print(
                f"  {figures['loss_percent']} % loss ({figures['tool']}) for "
                f"{figures['seconds']:.0f} s: false deaths {len(figures['false_deaths'])}, "
                f"status polls showing a suspect {figures['polls_with_a_suspect']}"
            )
        print()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
