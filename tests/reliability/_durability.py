"""kill -9 of a real ``rony serve`` node while 64 clients write durably (``Rel.Put``): after
each kill the store must open cleanly and hold every write the node acknowledged.

``crash_round`` is one round: start the node on ``data_dir`` (the store left by the last
round's kill, if any), run ``writers`` WebSocket clients each writing its own keys one after
another, SIGKILL the node once ``kill_after`` writes are acknowledged, then open the store
directly (``rony.store.Store``) and check every acknowledged key. Writes in flight at the kill
may or may not be there (they were never acknowledged); an acknowledged one missing is a loss.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from rony.core import C_KeyValue, KeyValue, decode_envelope, envelope, unwrap
from rony.store import Store
from tests.reliability._app import C_Put
from tests.reliability._node import ServeProcess
from tests.reliability._ws import BINARY, RawWS, frame


@dataclass
class RoundResult:
    acked: int  # writes acknowledged before the kill
    lost: int  # of those, missing or wrong after the kill
    entries: int  # keys in the store after the round


class _Acks:
    """The acknowledged writes; ``enough`` is set once ``want`` of them are in."""

    def __init__(self, want: int) -> None:
        self.writes: list[tuple[bytes, bytes]] = []
        self.want = want
        self.enough = asyncio.Event()

    def add(self, key: bytes, value: bytes) -> None:
        self.writes.append((key, value))
        if len(self.writes) >= self.want:
            self.enough.set()


async def _writer(port: int, w: int, round_: int, acks: _Acks, stop: asyncio.Event) -> None:
    try:
        ws = await RawWS.connect("127.0.0.1", port)
    except (OSError, asyncio.IncompleteReadError, AssertionError):
        return
    try:
        i = 0
        while not stop.is_set():
            key = f"r{round_}-w{w}-{i:07d}"
            value = f"{key}=" + "v" * 40
            req = envelope(KeyValue(Key=key, Value=value), i + 1, constructor=C_Put)
            ws.send(frame(BINARY, req.SerializeToString()))
            msg = await ws.read_message(within=30)
            env = decode_envelope(msg.payload)
            assert env.Constructor == C_KeyValue, env
            assert unwrap(env, KeyValue).Key == key
            acks.add(key.encode(), value.encode())
            i += 1
    except (OSError, asyncio.IncompleteReadError, TimeoutError):
        pass  # the node was killed under us
    finally:
        await ws.aclose()


async def _load_and_kill(
    node: ServeProcess, round_: int, writers: int, kill_after: int
) -> list[tuple[bytes, bytes]]:
    acks = _Acks(kill_after)
    stop = asyncio.Event()
    tasks = [asyncio.create_task(_writer(node.port, w, round_, acks, stop)) for w in range(writers)]
    try:
        async with asyncio.timeout(120):
            await acks.enough.wait()
        node.kill()  # SIGKILL, mid-stream: up to `writers` writes in flight
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    return acks.writes


def crash_round(
    data_dir: Path, round_: int, *, writers: int = 64, kill_after: int = 300
) -> RoundResult:
    node = ServeProcess(data_dir)
    node.start()
    try:
        acked = asyncio.run(_load_and_kill(node, round_, writers, kill_after))
    finally:
        with contextlib.suppress(Exception):
            node.kill()
    lost = 0
    with Store.open(data_dir, sweep_interval=None) as store:  # opens cleanly: no stale lock
        for key, value in acked:
            if store.get(key) != value:
                lost += 1
        entries = store.count()
        store.set(b"after-crash", b"ok")  # and takes writes again
    return RoundResult(acked=len(acked), lost=lost, entries=entries)
