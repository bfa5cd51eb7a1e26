"""examples/notes (the README's example beyond echo): store with TTL, a push to a watching
WebSocket, the auth pre-handler, a disconnect hook; through the real gateway and clients."""

from __future__ import annotations

import asyncio

import pytest

from examples.notes.app import (
    NOTE_TTL,
    TOKEN,
    C_NotesGet,
    C_NotesPut,
    C_NotesWatch,
    app,
    watchers,
)
from rony.client import AsyncClient
from rony.core import C_KeyValue, C_Ping, KeyValue, Ping, Pong, unwrap
from rony.core.errors import AccessError, UnavailableError
from rony.server.testing import serve

AUTH = {"token": TOKEN}


async def test_notes_put_get_push_and_auth() -> None:
    async with serve(app) as edge:
        url = edge.url.replace("http", "ws")
        async with AsyncClient(url) as watcher, AsyncClient(url) as writer:
            async with watcher.pushes() as stream:
                await watcher.call(C_NotesWatch, KeyValue(), Pong, header=AUTH)
                note = KeyValue(Key="shopping", Value="milk")
                assert await writer.call(C_NotesPut, note, KeyValue, header=AUTH) == note
                pushed = await asyncio.wait_for(anext(aiter(stream)), 5)
                assert pushed.Constructor == C_KeyValue
                assert unwrap(pushed, KeyValue) == note
            got = await writer.call(C_NotesGet, KeyValue(Key="shopping"), KeyValue, header=AUTH)
            assert got.Value == "milk"
            ttl = await edge.store.ttl(b"note/shopping")
            assert NOTE_TTL - 60 < ttl <= NOTE_TTL
            with pytest.raises(UnavailableError):
                await writer.call(C_NotesGet, KeyValue(Key="nothing"), KeyValue, header=AUTH)
            with pytest.raises(AccessError):  # the pre-handler: no token
                await writer.call(C_NotesGet, KeyValue(Key="shopping"), KeyValue)
            assert await writer.call(C_Ping, Ping(ID=1), Pong)  # builtin: no token
            assert len(watchers) == 1
        # The watcher's socket closed: its disconnect hook forgot it.
        async with asyncio.timeout(5):
            while watchers:  # noqa: ASYNC110 - the hook runs in the server's task
                await asyncio.sleep(0.01)
