"""pytest plugin (entry point ``pytest11``): the ``rony_node`` fixture.

    async def test_echo(rony_node):
        edge = await rony_node(app)          # a real node on 127.0.0.1:0, data in tmp_path
        ...                                  # stopped when the test ends

Needs pytest-asyncio; without it the plugin defines nothing (so installing rony-server never
breaks an unrelated pytest run). Heavy imports happen only when the fixture is used.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rony.server import App, Edge

__all__ = ["rony_node"]

NodeFactory = Callable[..., Awaitable["Edge"]]

pytest_asyncio: Any
try:
    pytest_asyncio = importlib.import_module("pytest_asyncio")
except ImportError:  # pragma: no cover - pytest-asyncio is not installed
    pytest_asyncio = None

if pytest_asyncio is not None:

    @pytest_asyncio.fixture  # type: ignore[untyped-decorator]
    async def rony_node(tmp_path: Path) -> AsyncIterator[NodeFactory]:
        """Factory of started nodes: ``await rony_node(app, **settings_overrides) -> Edge``."""
        from rony.server.testing import _edge_for, _stop_all

        edges: list[Edge] = []

        async def start(app: App | Edge, **overrides: Any) -> Edge:
            overrides.setdefault("data_dir", tmp_path / f"rony-node-{len(edges)}")
            overrides.setdefault("gateway_host", "127.0.0.1")
            overrides.setdefault("gateway_port", 0)
            edge = _edge_for(app, overrides)
            await edge.start()
            edges.append(edge)
            return edge

        try:
            yield start
        finally:
            await _stop_all(reversed(edges), 1.0)  # every node, even if one's stop raises
