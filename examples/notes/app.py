"""Notes: a service beyond echo, written by hand (no .proto), on rony.core's KeyValue message.

    rony serve examples.notes.app:app --gateway 127.0.0.1:8080

* ``Notes.Put``   KeyValue(Key=name, Value=text) -> the note, stored for ``NOTE_TTL`` seconds;
                  every WebSocket watching gets it pushed (RequestID 0).
* ``Notes.Get``   KeyValue(Key=name) -> the note, or E02 UNAVAILABLE once it expired.
* ``Notes.Watch`` anything -> Pong; this WebSocket receives every later Put.

Every call needs the header ``token: <NOTES_TOKEN>`` (an app pre-handler; the builtins such
as Ping skip app middleware). A connection's disconnect hook forgets its watch.
"""

from __future__ import annotations

import os
from typing import Final

from rony.core import (
    C_KeyValue,
    C_Pong,
    Conn,
    KeyValue,
    Pong,
    RequestCtx,
    envelope,
    method_id,
)
from rony.core.errors import AccessError, InvalidError, UnavailableError
from rony.server import App, edge_of

C_NotesPut: Final = method_id("Notes", "Put")
C_NotesGet: Final = method_id("Notes", "Get")
C_NotesWatch: Final = method_id("Notes", "Watch")

NOTE_TTL: Final = 3600.0  # seconds a note lives in the store
TOKEN: Final = os.environ.get("NOTES_TOKEN", "let-me-in")

app = App("notes")
watchers: set[int] = set()  # conn ids of the WebSockets that called Watch


async def require_token(ctx: RequestCtx) -> None:
    """Pre-handler: an error reply (which stops the chain) without the right token."""
    if ctx.header.get("token") != TOKEN:
        ctx.push_error(AccessError("TOKEN", "send the header token"))


async def put(ctx: RequestCtx) -> None:
    note = ctx.message(KeyValue)
    if not note.Key:
        raise InvalidError("KEY", "a note needs a name (Key)")
    await edge_of(ctx).store.set(b"note/" + note.Key.encode(), note.Value.encode(), ttl=NOTE_TTL)
    edge = edge_of(ctx)
    for conn_id in list(watchers):
        if not edge.push(conn_id, envelope(note, 0, constructor=C_KeyValue)):
            watchers.discard(conn_id)  # gone
    ctx.push_message(note, constructor=C_KeyValue)


async def get(ctx: RequestCtx) -> None:
    name = ctx.message(KeyValue).Key
    value = await edge_of(ctx).store.get(b"note/" + name.encode())
    if value is None:
        raise UnavailableError("NOTE", f"no note {name!r} (or it expired)")
    ctx.push_message(KeyValue(Key=name, Value=value.decode()), constructor=C_KeyValue)


async def watch(ctx: RequestCtx) -> None:
    if not ctx.conn.persistent:
        raise InvalidError("CONN", "Watch needs a WebSocket (pushes cannot reach HTTP)")
    watchers.add(ctx.conn_id)
    ctx.push_message(Pong(), constructor=C_Pong)


@app.on_disconnect
async def forget(conn: Conn) -> None:
    watchers.discard(conn.conn_id)


app.add_pre_handler(require_token)
app.handle(C_NotesPut, put, request_class=KeyValue, service="Notes", method="Put")
app.handle(C_NotesGet, get, request_class=KeyValue, service="Notes", method="Get")
app.handle(C_NotesWatch, watch, request_class=KeyValue, service="Notes", method="Watch")
