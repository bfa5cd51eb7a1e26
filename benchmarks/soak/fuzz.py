"""Coverage-guided fuzzing of every decoder with atheris (libFuzzer), each for a fixed time.

    hatch run soak:fuzz                    # every target, 60 s each
    hatch run soak:fuzz --seconds 600 envelope json

The targets are ``tests/reliability/_decoders.py``'s (envelope + container, JSON envelope,
REST binding, tunnel frames, gossip packets), the same the normal test run drives with a fixed
hypothesis budget. Each runs in its own process (libFuzzer exits when done) with our modules
instrumented for coverage, a corpus seeded with well-formed inputs, and
``-max_total_time``; a crash (an exception the decoder does not document) is saved under
``--artifacts`` (default a temporary folder) and counted. Printed per target: inputs tried,
inputs per second, coverage features, corpus size, crashes. There is no baseline to divide
by: the goal is 0 crashes; inputs per second are for information.

Each crash found becomes a regression test (the input, in tests/reliability) and a fix.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))


def child(name: str, corpus: str, libfuzzer_args: list[str]) -> None:
    import atheris

    from tests.reliability._decoders import TARGETS

    # Every Python function loaded so far, ours and the libraries' (json's Python half,
    # urllib.parse), gets coverage hooks. (instrument_imports() misses modules that the
    # workspace's editable installs load through their own finder.)
    atheris.instrument_all()

    target = TARGETS[name]
    atheris.Setup([sys.argv[0], corpus, *libfuzzer_args], target)
    atheris.Fuzz()


# libFuzzer dictionaries: tokens the mutator splices in, so that text formats get past their
# parser (json.loads is C: it gives no coverage to guide by).
DICTS = {
    "json": [
        '"requestId"', '"cmd"', '"message"', '"header"', '"auth"', '"Ping"', '"MessageContainer"',
        '"Envelopes"', '"SyncRun"', '"ID"', '"18446744073709551616"', '"-1"', "{", "}", "[", "]",
        ":", ",", "null", "true", "1e400", '"\\u0000"', '"\\ud800"',
    ],
    "rest": ["/echo/", "%00", "%ZZ", "%2F", "=", "&", "\xff", "-1", "18446744073709551616"],
}  # fmt: skip


_STAT = re.compile(r"stat::(\w+):\s+(\d+)")
_DONE = re.compile(r"#(\d+)\s+DONE\s+cov: (\d+) ft: (\d+) corp: (\d+)")


def _quoted(token: str) -> str:
    """A dictionary line: the token in double quotes, ``\\``, ``"`` and non-ASCII escaped."""
    out = []
    for b in token.encode("latin-1"):
        out.append(f"\\x{b:02x}" if b in (0x22, 0x5C) or not 0x20 <= b < 0x7F else chr(b))
    return '"' + "".join(out) + '"'


def run_target(name: str, seconds: float, artifacts: Path) -> dict[str, int]:
    from tests.reliability._decoders import SEEDS

    with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as corpus:
        for i, seed in enumerate(SEEDS[name]):
            (Path(corpus) / f"seed{i}").write_bytes(seed)
        where = artifacts / name
        where.mkdir(parents=True, exist_ok=True)
        args = [f"-dict={corpus}.dict"] if name in DICTS else []
        if name in DICTS:
            Path(f"{corpus}.dict").write_text(
                "".join(f"{_quoted(token)}\n" for token in DICTS[name])
            )
        args += [
            f"-max_total_time={int(seconds)}",
            "-print_final_stats=1",
            f"-artifact_prefix={where}/",
            "-max_len=4096",
            "-timeout=10",
            "-rss_limit_mb=2048",
        ]
        proc = subprocess.run(
            [sys.executable, __file__, "--child", name, corpus, *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=seconds + 300,
            check=False,
        )
    Path(f"{corpus}.dict").unlink(missing_ok=True)
    out = proc.stderr + proc.stdout
    stats = {k: int(v) for k, v in _STAT.findall(out)}
    done = _DONE.findall(out)
    crashes = len(list(where.glob("crash-*"))) + len(list(where.glob("timeout-*")))
    result = {
        "runs": stats.get("number_of_executed_units", int(done[-1][0]) if done else 0),
        "seconds": stats.get("total_time_sec", int(seconds)) or 1,
        "cov": int(done[-1][1]) if done else 0,
        "ft": int(done[-1][2]) if done else 0,
        "corpus": int(done[-1][3]) if done else 0,
        "crashes": crashes,
        "exit": proc.returncode,
    }
    if (proc.returncode != 0 and not crashes) or crashes:
        print(out[-3000:], file=sys.stderr)
    return result


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        child(argv[1], argv[2], argv[3:])
        return 0
    from tests.reliability._decoders import TARGETS

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("targets", nargs="*", choices=[[], *TARGETS], default=[])
    p.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    p.add_argument("--artifacts", type=Path, help="where crashing inputs go (default: a tmp dir)")
    args = p.parse_args(argv)
    names = args.targets or list(TARGETS)
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="rony-fuzz-"))
    total_runs = total_crashes = 0
    print(f"atheris, {args.seconds:.0f} s per target; crashing inputs go to {artifacts}")
    for name in names:
        r = run_target(name, args.seconds, artifacts)
        total_runs += r["runs"]
        total_crashes += r["crashes"]
        print(
            f"  {name:9s} {r['runs']:>10,} inputs  {r['runs'] / r['seconds']:>8,.0f}/s  "
            f"cov {r['cov']:>5}  ft {r['ft']:>6}  corpus {r['corpus']:>5}  "
            f"crashes {r['crashes']}",
            flush=True,
        )
    print(f"  {'all':9s} {total_runs:>10,} inputs, {total_crashes} crashes (goal 0)")
    return 1 if total_crashes else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
