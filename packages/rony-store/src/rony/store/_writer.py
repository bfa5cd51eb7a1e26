"""Background threads of a store: the group-commit writer and the maintenance loop.

Group commit
------------
Writers (threads blocked in ``call`` and asyncio tasks awaiting a future from ``submit``)
append an operation to a queue. One writer thread takes everything queued (up to
``max_batch``), runs it in ONE LMDB write transaction, commits once (in durable mode that
commit is the fsync), and only then acknowledges every operation of the batch. While it is
committing, new operations queue up and form the next batch, so N concurrent writers share
one fsync instead of paying N. The asyncio tasks of one event loop are completed with a single
``call_soon_threadsafe`` per batch.

Blocked threads are woken in a chain: each waits on its own lock; after a commit the writer
links the batch's waiters (``op.next`` = the next waiter's lock), releases only the first and
goes straight on to the next batch; each woken caller releases the next before it returns.
Releasing 64 locks itself cost the writer ~0.3 ms per commit (a futex wake each, under the
GIL) and woke 64 threads at once to fight for the GIL; the chain takes those wake-ups off the
writer's critical path and wakes the callers one at a time (64 threads, durable: commits went
from ~350/s to ~600/s; benchmarks/store.py). An interrupted caller leaves a stand-in thread
that waits for its lock and passes the wake-up on.

The queue is a ``collections.deque`` (atomic append/popleft). The writer sleeps on a condition
only when the queue is empty and says so in ``_sleeping``; a producer notifies only then. The
producer writes the queue then reads ``_sleeping``; the writer writes ``_sleeping`` then reads
the queue (under the GIL one of them sees the other), so no wake-up is lost and the common case
takes no lock.
"""

from __future__ import annotations

import bisect
import contextlib
import copy
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

from .errors import StorageError, StoreClosedError

if TYPE_CHECKING:
    import asyncio

T = TypeVar("T")
Outcome = tuple[bool, Any]
BatchRunner = Callable[[list[Callable[[Any], Any]]], list[Outcome]]

log = logging.getLogger("rony.store")

_NEVER = sys.maxsize
GATHER_MAX = 0.002
"""Longest the writer waits (seconds) for the callers of its last batch to queue again."""

COMMIT_BUCKETS: tuple[float, ...] = (
    0.0001, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5, 1.0, 5.0,
)  # fmt: skip
"""Upper bounds (seconds) of the group-commit duration histogram (``Store.counters()``)."""


class _Op:
    __slots__ = ("fn", "future", "lock", "loop", "next", "ok", "value")

    def __init__(self, fn: Callable[[Any], Any]) -> None:
        self.fn = fn
        self.ok = False
        self.value: Any = None
        self.lock: Any = None
        self.next: Any = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.future: asyncio.Future[Any] | None = None


def _stand_in(op: _Op) -> None:
    """Wait in place of an interrupted caller and pass its wake-up on down the chain."""
    op.lock.acquire()
    if op.next is not None:
        op.next.release()


def _resolve(ops: list[_Op]) -> None:
    """Runs in the event loop: complete the futures of one batch."""
    for op in ops:
        future = op.future
        if future is None or future.done():  # cancelled: the write happened, nobody waits
            continue
        if op.ok:
            future.set_result(op.value)
        else:
            future.set_exception(op.value)


class GroupCommitter:
    """The writer thread. ``call`` blocks a thread; ``submit`` completes an asyncio future."""

    def __init__(self, run_batch: BatchRunner, max_batch: int, name: str) -> None:
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._queue: deque[_Op] = deque()
        self._local = threading.local()
        self._commit_seconds = 0.0
        # Commits run by this writer: a count per COMMIT_BUCKETS bound (the last: over the
        # largest) and their total seconds. Written by the writer thread only.
        self.commit_buckets = [0] * (len(COMMIT_BUCKETS) + 1)
        self.commit_total = 0.0
        self._want = _NEVER  # queue length at which a gathering writer wants waking
        self._cond = threading.Condition(threading.Lock())
        self._sleeping = False
        self._stopping = False
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def call(self, fn: Callable[[Any], T]) -> T:
        """Queue ``fn`` and wait until its batch is committed; its result or exception."""
        op = _Op(fn)
        local = self._local
        try:
            lock = local.lock  # each thread reuses one lock, kept acquired between calls
        except AttributeError:
            lock = local.lock = threading.Lock()
            lock.acquire()
        op.lock = lock
        self._put(op)
        try:
            lock.acquire()  # released by the writer once the commit is done
        except BaseException:
            # Interrupted: the chain (see module doc) will still release this lock; a stand-in
            # waits for it and passes the wake-up on, so the callers after us are not stranded.
            del local.lock  # and this thread must not reuse it
            threading.Thread(target=_stand_in, args=(op,), daemon=True).start()
            raise
        nxt = op.next
        if nxt is not None:
            nxt.release()  # wake the next caller of this batch
        if op.ok:
            result: T = op.value
            return result
        raise op.value

    def submit(
        self, fn: Callable[[Any], Any], loop: asyncio.AbstractEventLoop
    ) -> asyncio.Future[Any]:
        """Queue ``fn``; the returned future of ``loop`` completes after its commit."""
        op = _Op(fn)
        op.loop = loop
        op.future = loop.create_future()
        self._put(op)
        return op.future

    def _put(self, op: _Op) -> None:
        if self._stopping:
            raise StoreClosedError("the store is closed")
        queue = self._queue
        queue.append(op)
        if self._sleeping or len(queue) >= self._want:
            with self._cond:
                self._cond.notify()
        if self._stopped:  # raced with close(): make sure nobody waits forever
            self._fail_leftovers()

    def _run(self) -> None:
        queue = self._queue
        last = 0
        while True:
            if not queue:
                with self._cond:
                    self._sleeping = True
                    while not queue and not self._stopping:
                        self._cond.wait()
                    self._sleeping = False
                if not queue:
                    return  # stopping and drained
            self._gather(last)
            batch: list[_Op] = []
            while queue and len(batch) < self._max_batch:
                batch.append(queue.popleft())
            last = len(batch)
            started = time.monotonic()
            try:
                outcomes = self._run_batch([op.fn for op in batch])
            except BaseException as exc:  # a bug in the batch runner: fail the batch, go on
                log.exception("rony.store writer failed a batch")
                outcomes = [(False, StorageError(f"writer failed: {exc!r}"))] * len(batch)
            self._commit_seconds = took = time.monotonic() - started
            self.commit_buckets[bisect.bisect_left(COMMIT_BUCKETS, took)] += 1
            self.commit_total += took
            self._complete(batch, outcomes)

    def _gather(self, woken: int) -> None:
        """Before taking a batch, give the ``woken`` callers of the previous batch a moment to
        queue their next write, so both groups share the next commit.

        Without this, 2N concurrent writers settle into two alternating batches of N: while
        one batch commits, the other group queues, and the writer finds exactly that group.
        Waiting for the woken group merges them; it pays as long as the wait is shorter than
        a commit, so it is capped at half the last commit's duration (GATHER_MAX at most).
        The writer blocks (no spinning); the producer that completes the group wakes it.
        A lone caller waits for nothing.
        """
        queue = self._queue
        target = woken + len(queue)
        if woken < 2 or len(queue) >= target:
            return
        deadline = time.monotonic() + min(GATHER_MAX, self._commit_seconds / 2)
        with self._cond:
            self._want = target
            while len(queue) < target and not self._stopping:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            self._want = _NEVER

    def _complete(self, batch: list[_Op], outcomes: list[Outcome]) -> None:
        by_loop: dict[asyncio.AbstractEventLoop, list[_Op]] = {}
        waiters: list[_Op] = []
        shared: set[int] = set()  # ids of errors already handed to a caller of this batch
        for op, (ok, value) in zip(batch, outcomes, strict=True):
            op.ok = ok
            # An error shared by a whole batch gets one copy per caller (own traceback); an
            # op's own error (from user code too) is handed over as it is, traceback and all.
            if not ok:
                if id(value) in shared:
                    value = copy.copy(value)
                else:
                    shared.add(id(value))
            op.value = value
            if op.lock is not None:
                waiters.append(op)
            elif op.loop is not None:
                by_loop.setdefault(op.loop, []).append(op)
        for i in range(len(waiters) - 1):
            waiters[i].next = waiters[i + 1].lock
        if waiters:
            waiters[0].lock.release()
        for loop, ops in by_loop.items():
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is left to tell
                loop.call_soon_threadsafe(_resolve, ops)

    def _fail_leftovers(self) -> None:
        leftovers: list[_Op] = []
        while True:
            try:
                leftovers.append(self._queue.popleft())
            except IndexError:
                break
        if leftovers:
            self._complete(
                leftovers, [(False, StoreClosedError("the store is closed"))] * len(leftovers)
            )

    def close(self) -> None:
        """Run what is queued, stop the thread, fail anything that raced in (idempotent)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join()
        self._stopped = True
        self._fail_leftovers()


class Maintenance:
    """A thread running periodic tasks (sweeper, fast-mode sync, read-cache janitor).

    A task's exception is logged and kept in ``last_error``; the loop goes on.
    """

    def __init__(self, tasks: list[tuple[float, Callable[[], object]]], name: str) -> None:
        self._tasks = tasks
        self._stop = threading.Event()
        self.last_error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        now = time.monotonic()
        due = [now + interval for interval, _ in self._tasks]
        while True:
            wait = max(0.0, min(due) - time.monotonic())
            if self._stop.wait(wait):
                return
            now = time.monotonic()
            for i, (interval, task) in enumerate(self._tasks):
                if due[i] > now:
                    continue
                try:
                    task()
                except StoreClosedError:
                    return
                except Exception as exc:
                    self.last_error = exc
                    log.warning("rony.store background task failed: %r", exc)
                due[i] = time.monotonic() + interval
                if self._stop.is_set():
                    return

    def close(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()
