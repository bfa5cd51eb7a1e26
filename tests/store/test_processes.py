"""Several processes on one store: the single-writer rule, readers in other processes, and a
writer killed with SIGKILL in the middle of a stream of durable writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from rony.store import Store
from rony.store.errors import StorageError, StoreLockedError

pytestmark = pytest.mark.slow


def child(code: str, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], timeout: float = 30) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, err
    return out


def test_second_writer_process_gets_typed_error(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    with Store.open(path) as s:
        s.set(b"k", b"v")
        proc = child(
            """
            import sys
            from rony.store import Store
            from rony.store.errors import StorageError, StoreLockedError
            try:
                Store.open(sys.argv[1])
            except StoreLockedError as exc:
                print("locked")
            with Store.open(sys.argv[1], readonly=True) as r:
                print(r.get(b"k").decode())
            """,
            path,
        )
        assert finish(proc).split() == ["locked", "v"]
    # the writer is gone: another process may now write
    proc = child(
        """
        import sys
        from rony.store import Store
        with Store.open(sys.argv[1]) as s:
            s.set(b"k", b"from child")
        """,
        path,
    )
    finish(proc)
    with Store.open(path) as s:
        assert s.get(b"k") == b"from child"


def test_lock_held_by_child_refuses_parent(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    proc = child(
        """
        import sys
        from rony.store import Store
        with Store.open(sys.argv[1]) as s:
            print("open", flush=True)
            sys.stdin.readline()
        """,
        path,
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    assert proc.stdout.readline().strip() == "open"
    with pytest.raises(StoreLockedError):
        Store.open(path)
    proc.stdin.write("bye\n")
    proc.stdin.flush()
    finish(proc)


def test_reader_process_sees_commits_and_map_growth(tmp_path: Path) -> None:
    """A read-only process sees each commit of the writer, also after the writer grew the map
    far beyond the size the reader mapped."""
    path = str(tmp_path / "s")
    with Store.open(path, map_size=1 << 16, sweep_interval=None) as s:
        s.set(b"round", b"0")
        proc = child(
            """
            import sys, time
            from rony.store import Store
            with Store.open(sys.argv[1], readonly=True) as r:
                for n in range(1, 4):
                    print(r.get(b"round").decode(), flush=True)
                    sys.stdin.readline()
                    deadline = time.monotonic() + 10
                    while r.get(b"round") != str(n).encode():
                        assert time.monotonic() < deadline, "commit never seen"
                        time.sleep(0.001)
                print(r.get(b"round").decode(), r.count(b"big"), flush=True)
            """,
            path,
        )
        assert proc.stdout is not None
        assert proc.stdin is not None
        big = b"x" * 4000
        for n in range(1, 4):
            assert proc.stdout.readline().strip() == str(n - 1)
            # grow the map several times over, then publish the round
            s.set_many([(b"big%d-%04d" % (n, i), big) for i in range(60)])
            s.set(b"round", str(n).encode())
            proc.stdin.write("next\n")
            proc.stdin.flush()
        assert s.stats().map_size >= 1 << 20
        assert finish(proc).split() == ["3", "180"]


def test_view_that_fails_to_adopt_a_grown_map_leaves_no_view_counted(tmp_path: Path) -> None:
    """A view whose adoption of another process's map growth fails raises a typed error and
    is not left counted as open (a stale count would stall every later resize)."""
    path = str(tmp_path / "s")
    Store.open(path, map_size=1 << 16, sweep_interval=None).close()
    with Store.open(path, readonly=True, map_size=1 << 16) as r:
        finish(
            child(
                """
                import sys
                from rony.store import Store
                with Store.open(sys.argv[1], map_size=1 << 16, sweep_interval=None) as s:
                    s.set_many([(b"big%04d" % i, b"x" * 4000) for i in range(100)])
                """,
                path,
            )
        )

        def adopt_fails() -> None:
            raise StorageError("cannot grow the map")

        r._adopt_map_size = adopt_fails  # type: ignore[method-assign]
        with pytest.raises(StorageError), r.view():
            pass
        assert r._views == 0
        del r._adopt_map_size
        with r.view() as txn:
            assert txn.count(b"big") == 100


CRASH_CHILD = """
import sys, threading
from rony.store import Store

store = Store.open(sys.argv[1], sweep_interval=None)
out_lock = threading.Lock()

def writer(t):
    i = 0
    while True:
        key = b"t%d-%08d" % (t, i)
        store.set(key, key * 3)        # durable: returns after the commit is on disk
        if i % 5 == 0:
            store.incr(b"counter-%d" % t)
        with out_lock:                 # acknowledged: tell the parent
            sys.stdout.write(key.decode() + "\\n")
            sys.stdout.flush()
        i += 1

for t in range(4):
    threading.Thread(target=writer, args=(t,), daemon=True).start()
threading.Event().wait()
"""


@pytest.mark.parametrize("round_", range(2))
def test_sigkill_mid_stream_loses_no_acknowledged_write(tmp_path: Path, round_: int) -> None:
    path = str(tmp_path / "s")
    proc = child(CRASH_CHILD, path)
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 200 + 150 * round_:
        line = proc.stdout.readline()
        assert line.endswith("\n"), proc.stderr.read() if proc.stderr else ""
        acked.append(line.strip())
        assert time.monotonic() < deadline
    os.kill(proc.pid, signal.SIGKILL)
    rest, _ = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    lines = rest.split("\n")
    acked += [line for line in lines[:-1] if line]  # the last piece may be a torn line
    with Store.open(path, sweep_interval=None) as s:  # opens cleanly: no stale lock
        for key in acked:
            raw = key.encode()
            assert s.get(raw) == raw * 3, key
        stats = s.stats()
        assert stats.entries == stats.live == s.count() == len(list(s.keys()))
        for t in range(4):
            mine = [k for k in acked if k.startswith(f"t{t}-")]
            if mine:
                last = int(mine[-1].split("-")[1])
                value = s.get(b"counter-%d" % t)
                assert value is not None
                assert int(value) >= last // 5
        s.set(b"after", b"crash")  # and takes writes again
        assert s.get(b"after") == b"crash"
