"""A process writing records with views and indexes (durable writes) is killed with SIGKILL
mid-stream; the reopened store has no half-written record: every index and view entry points
at a record that holds it, and every record has all of its entries."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from rony.store import Store, keys
from rony.store.repo import NAMESPACE, Repository
from tests.store._repo_models import Post, spec

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]

WRITER = """
    import sys
    sys.path.insert(0, sys.argv[2])
    from rony.store import Store
    from rony.store.repo import Repository
    from tests.store._repo_models import Post, spec
    from tests.store.test_repo_crash import write

    with Store.open(sys.argv[1], sweep_interval=None) as store:
        repo = Repository(spec(), store)
        n = 0
        while True:
            write(repo, n)
            n += 1
            print(n, flush=True)  # write n - 1 is acknowledged (durable)
"""


def post_for(n: int) -> Any:
    # A small set of keys, so most writes replace a record whose view key and indexed values
    # change: its old entries must go in the same transaction.
    return Post(
        user_id=n % 7 - 3,
        created=n % 3,
        id=n % 5,
        topic=f"t{n % 4}",
        title=f"title{n % 6}",
        tags=[f"tag{(n + i) % 9}" for i in range(n % 4)],
    )


def write(repo: Repository[Any], n: int) -> None:
    post = post_for(n)
    if n % 11 == 10:
        repo.delete(*repo.key_of(post))
    else:
        repo.save(post)


def _check_consistent(store: Store, repo: Repository[Any]) -> int:
    s = repo.spec
    table = s._table.prefix
    records = {k: v for k, v in store.scan(table)}
    expected: dict[bytes, bytes] = {}
    for key, raw in records.items():
        pk = key[len(table) :]
        expected.update(s.entries(repo.spec.message.FromString(raw), pk, raw))
    others = {k: v for k, v in store.scan(NAMESPACE) if not k.startswith(table)}
    # Every entry that exists belongs to a record (nothing dangling) ...
    stale = sorted(keys.unpack(k[1:]) for k in others.keys() - expected.keys())
    assert not stale, f"entries without their record: {stale[:5]}"
    # ... and every record has all of its entries, with the right values.
    missing = sorted(keys.unpack(k[1:]) for k in expected.keys() - others.keys())
    assert not missing, f"records without their entries: {missing[:5]}"
    assert all(others[k] == v for k, v in expected.items())
    return len(records)


def test_kill_9_mid_write_leaves_no_half_written_index(tmp_path: Path) -> None:
    path = str(tmp_path / "s")
    proc = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(WRITER), path, str(ROOT)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        written = 0
        while written < 300:  # wait on progress, not on time
            line = proc.stdout.readline()
            if not line:
                err = proc.stderr.read() if proc.stderr else ""
                raise AssertionError(f"the writer died: {err}")
            written = int(line)
            assert time.monotonic() < deadline, "the writer made too little progress"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        rest = proc.stdout.read().split()
        last = int(rest[-1]) if rest else written
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL
    with Store.open(path, sweep_interval=None) as store:
        repo = Repository(spec(), store)
        assert _check_consistent(store, repo) > 0
        # The last acknowledged write is there (the write after it touched another key).
        acked = post_for(last - 1)
        expected = None if (last - 1) % 11 == 10 else acked
        assert repo.read(*repo.key_of(acked)) == expected
