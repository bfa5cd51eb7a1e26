"""Clusters of in-process Edges for tests: gossip (and the tunnel) over mutual TLS on 127.0.0.1.

    async with edges(tmp_path, app, {"a": 1, "b": 2, "c": 2}, tunnel=True) as (a, b, c):
        ...

The first node is the seed; each name is a server id with its replica set. Certificates come
from a CA made for the test; every port is the OS's choice. The block starts once every node
sees every other (with its tunnel address when ``tunnel``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any

from rony.server import App, Edge
from rony.server.cluster._ca import make_test_pki
from rony.server.testing import serve


async def until(cond: Callable[[], bool], what: str, limit: float = 20.0) -> None:
    """Poll ``cond`` (state the gossip tasks own) until it holds, at most ``limit`` seconds."""
    try:
        async with asyncio.timeout(limit):
            while not cond():  # noqa: ASYNC110 - polls state owned by the gossip tasks
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"not within {limit} s: {what}") from None


@contextlib.asynccontextmanager
async def edges(
    tmp_path: Path,
    app: App,
    nodes: Mapping[str, int],
    *,
    tunnel: bool = False,
    **extra: Any,
) -> AsyncIterator[list[Edge]]:
    pki = tmp_path / "pki"
    make_test_pki(pki, list(nodes))

    def options(name: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "server_id": name,
            "replica_set": nodes[name],
            "gossip_host": "127.0.0.1",
            "tls_ca": str(pki / "ca.pem"),
            "tls_cert": str(pki / f"{name}.pem"),
            "tls_key": str(pki / f"{name}.key"),
            **extra,
        }
        if tunnel:
            out["tunnel_host"] = "127.0.0.1"
        return out

    names = list(nodes)
    async with contextlib.AsyncExitStack() as stack:
        seed = await stack.enter_async_context(serve(app, **options(names[0])))
        assert seed.cluster is not None
        started = [seed]
        for name in names[1:]:
            edge = serve(app, join=(seed.cluster.advertised,), **options(name))
            started.append(await stack.enter_async_context(edge))

        def ready() -> bool:
            for e in started:
                members = e.cluster.members() if e.cluster is not None else []
                if len(members) != len(started):
                    return False
                if tunnel and not all(m.tunnel_addrs for m in members):
                    return False
            return True

        await until(ready, "the cluster to form")
        yield started
