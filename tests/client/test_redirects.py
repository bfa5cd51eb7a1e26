"""Redirect replies from real handlers (``ctx.push_redirect_session/request``), followed by the
client to the edge they name.

Two nodes: A (replica set 0) and B (replica set 1). Without a cluster a node only knows itself,
so the test tells A where replica set 1 lives by replacing ``A.members`` (what a cluster would
answer); the Redirect itself is built by rony.core's RequestCtx and sent by A's gateway.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence

import pytest

from rony.client import AsyncClient, Client, ClientSettings, errors
from rony.core import Edge as EdgeMessage
from rony.core import KeyValue, Ping
from rony.server import Edge
from rony.server.testing import serve
from tests.client import _nodeapp as na


def served_by(kv: KeyValue) -> str:
    return kv.Key


@contextlib.asynccontextmanager
async def _redirecting_pair() -> AsyncIterator[tuple[Edge, Edge]]:
    """A redirects ``Test.WhoAmI`` to replica set 1 (B answers it), by reason given in the
    request's ``mode`` header."""
    from rony.core import RequestCtx
    from rony.server import App

    async def redirect_whoami(ctx: RequestCtx) -> None:
        # by the "mode" header, or (for a call with no header) by Ping.ID: 1 request, 2 session
        mode = ctx.header.get("mode") or {1: "request", 2: "session"}.get(ctx.message(Ping).ID, "")
        if mode == "session":
            ctx.push_redirect_session(1)
        elif mode == "request":
            ctx.push_redirect_request(1)
        elif mode == "wait":
            ctx.push_redirect_request(1, wait_in_sec=1)
        else:
            await na.who_am_i(ctx)

    app_a = App("a")
    app_a.handle(na.C_WhoAmI, redirect_whoami, request_class=Ping)
    async with (
        serve(app_a, replica_set=0, server_id="A") as a,
        serve(na.build_app("b"), replica_set=1, server_id="B") as b,
    ):
        own = a.members

        def members(replica_set: int | None = None) -> Sequence[EdgeMessage]:
            return [b.this_node()] if replica_set == 1 else own(replica_set)

        a.members = members  # type: ignore[method-assign]
        yield a, b


@pytest.fixture
async def redirecting_pair() -> AsyncIterator[tuple[Edge, Edge]]:
    async with _redirecting_pair() as pair:
        yield pair


@pytest.mark.parametrize("transport", ["ws", "http"])
async def test_async_request_and_session_redirects(
    redirecting_pair: tuple[Edge, Edge], transport: str
) -> None:
    a, _ = redirecting_pair
    async with AsyncClient(a.url, transport=transport) as c:  # type: ignore[arg-type]
        assert served_by(await c.call(na.C_WhoAmI, Ping(), KeyValue)) == "A"
        kv = await c.call(na.C_WhoAmI, Ping(), KeyValue, header={"mode": "request"})
        assert served_by(kv) == "B"
        assert c.session_replica_set is None
        assert served_by(await c.call(na.C_WhoAmI, Ping(), KeyValue)) == "A"  # this one only
        kv = await c.call(na.C_WhoAmI, Ping(), KeyValue, header={"mode": "session"})
        assert served_by(kv) == "B"
        assert c.session_replica_set == 1
        assert served_by(await c.call(na.C_WhoAmI, Ping(), KeyValue)) == "B"  # sticks
    # a batch member answered with a Redirect is re-sent alone, the others are not
    async with AsyncClient(a.url, transport=transport) as c:  # type: ignore[arg-type]
        from rony.core import envelope

        envs = [
            envelope(Ping(), constructor=na.C_WhoAmI, header={"mode": "request"}),
            envelope(Ping(), constructor=na.C_WhoAmI),
        ]
        replies = await c.send_batch(envs)
        assert [KeyValue.FromString(r.Message).Key for r in replies] == ["B", "A"]
    not_following = ClientSettings(follow_redirects=False)
    async with AsyncClient(a.url, transport=transport, settings=not_following) as c:  # type: ignore[arg-type]
        with pytest.raises(errors.UnexpectedResponse, match="got Redirect"):
            await c.call(na.C_WhoAmI, Ping(), KeyValue, header={"mode": "request"})


async def test_async_redirects_of_calls_on_an_open_link(
    redirecting_pair: tuple[Edge, Edge],
) -> None:
    """A call with no header on a link that is up takes AsyncClient's fast lane (its first
    attempt runs without an Exchange); a Redirect it gets is followed all the same."""
    a, _ = redirecting_pair
    async with AsyncClient(a.url) as c:
        await c.connect()
        assert served_by(await c.call(na.C_WhoAmI, Ping(ID=1), KeyValue)) == "B"  # request
        assert c.session_replica_set is None
        assert served_by(await c.call(na.C_WhoAmI, Ping(), KeyValue)) == "A"
        assert served_by(await c.call(na.C_WhoAmI, Ping(ID=2), KeyValue)) == "B"  # session
        assert c.session_replica_set == 1
        assert served_by(await c.call(na.C_WhoAmI, Ping(), KeyValue)) == "B"  # sticks
    async with AsyncClient(a.url, settings=ClientSettings(follow_redirects=False)) as c:
        await c.connect()
        with pytest.raises(errors.UnexpectedResponse, match="got Redirect"):
            await c.call(na.C_WhoAmI, Ping(ID=1), KeyValue)


async def test_async_redirect_loop_is_bounded(redirecting_pair: tuple[Edge, Edge]) -> None:
    _, b = redirecting_pair  # B's RedirectRequest names B's own replica set: a loop
    async with AsyncClient(b.url, settings=ClientSettings(max_redirects=3)) as c:
        with pytest.raises(errors.TooManyRedirects):
            await c.call(na.C_RedirectRequest, Ping(ID=1), KeyValue)
        assert c.session_replica_set is None


async def test_async_redirect_wait_in_sec(redirecting_pair: tuple[Edge, Edge]) -> None:
    a, _ = redirecting_pair
    async with AsyncClient(a.url) as c:
        t0 = time.monotonic()
        kv = await c.call(na.C_WhoAmI, Ping(), KeyValue, header={"mode": "wait"})
        assert served_by(kv) == "B"
        assert time.monotonic() - t0 >= 1.0
        with pytest.raises(errors.RequestTimeout):  # cannot wait 1 s within 0.5 s: fails now
            await c.call(na.C_WhoAmI, Ping(), KeyValue, header={"mode": "wait"}, timeout=0.5)


def test_sync_redirects(redirecting_pair_thread: tuple[str, str]) -> None:
    a_url, _ = redirecting_pair_thread
    for transport in ("ws", "http"):
        with Client(a_url, transport=transport) as c:  # type: ignore[arg-type]
            assert served_by(c.call(na.C_WhoAmI, Ping(), KeyValue)) == "A"
            kv = c.call(na.C_WhoAmI, Ping(), KeyValue, header={"mode": "request"})
            assert served_by(kv) == "B"
            assert served_by(c.call(na.C_WhoAmI, Ping(), KeyValue)) == "A"
            kv = c.call(na.C_WhoAmI, Ping(), KeyValue, header={"mode": "session"})
            assert served_by(kv) == "B"
            assert c.session_replica_set == 1
            assert served_by(c.call(na.C_WhoAmI, Ping(), KeyValue)) == "B"


@pytest.fixture
def redirecting_pair_thread() -> Iterator[tuple[str, str]]:
    """The same pair, served from a background thread for the blocking client."""
    ready = threading.Event()
    stop: list[asyncio.Event] = []
    urls: list[str] = []
    loop_box: list[asyncio.AbstractEventLoop] = []

    async def main() -> None:
        async with _redirecting_pair() as (a, b):
            urls.extend([a.url, b.url])
            stop.append(asyncio.Event())
            loop_box.append(asyncio.get_running_loop())
            ready.set()
            await stop[0].wait()

    t = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    t.start()
    assert ready.wait(10)
    yield urls[0], urls[1]
    loop_box[0].call_soon_threadsafe(stop[0].set)
    t.join(10)
