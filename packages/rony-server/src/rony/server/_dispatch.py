"""The Dispatcher: bytes or an envelope in, handler chains run, replies out. Pure asyncio.

Theory of operation
-------------------
A transport (the gateway's WebSocket or HTTP conn, the tunnel, the in-process TestClient) hands
the dispatcher one received unit: raw bytes (``dispatch_bytes``) or a decoded envelope
(``dispatch``), plus a ``reply`` callable for persistent conns. The dispatcher

1. decodes (binary protobuf or Go Rony's JSON envelope) within ``Limits``; a bad envelope gets an
   ``Error{E01, REQUEST}`` reply (Go Rony sent nothing back: inventory §14 weakness 3);
2. makes one ``DispatchCtx`` for the unit; a ``MessageContainer`` is unpacked (also within
   limits; a bad container gets an E01 REQUEST reply carrying the container's RequestID), and
   each inner envelope gets its own ``RequestCtx``: concurrently, or one after the other when
   ``SyncRun`` is set (a handler may let the next one start early with ``ctx.next_can_go()``);
3. per envelope: finds the chain (app handlers first, then the builtins Ping / GetNodes /
   GetAllNodes), refuses ``internal`` methods to gateway conns, runs pre-handlers, the chain and
   post-handlers under ``handler_timeout``, and maps failures to Error replies:

   ======================================  ===============================================
   unknown constructor, nested container   E01 HANDLER
   internal method from the gateway        E01 HANDLER (same as unknown: reveals nothing)
   payload does not decode                 E01 REQUEST (raised by ``ctx.message``)
   handler raises a RonyError              that error (code, items, description)
   handler lets a repository error out     E08 RECORD (``RecordExistsError``: a create of a
                                           taken key) / E02 RECORD (``RecordNotFoundError``:
                                           an update of a missing one), with its text
   handler raises anything else            E00 SERVER, no description (no traceback leaks;
                                           the traceback is logged)
   handler_timeout passes                  E06 TIMEOUT; but a chain that catches the
                                           cancellation and finishes answers for itself
                                           (one outcome per request: see ``_timed_out``)
   ======================================  ===============================================

Replies reach the client through ``DispatchCtx.deliver``: at once through ``reply`` on a
persistent conn (one frame each, as Go Rony), buffered otherwise; ``dispatch`` returns the
buffer for the caller (REST, tunnel) to write. The gateway's HTTP RPC keeps its own buffer: it
passes ``reply`` and ``send_encoded`` that append to a list it writes when the dispatch is done.

Builtins skip the app's pre- and post-handlers: Go Rony meant to (``ho.builtin``) but never
called ``setBuiltin()``, so an auth middleware also blocked ``GetNodes``, which clients call
before they log in (inventory §14 weakness 2). An app that registers its own handler for a
builtin constructor replaces the builtin, and then its middleware runs as for any handler.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rony.core import (
    DEFAULT_LIMITS,
    C_MessageContainer,
    Conn,
    DispatchCtx,
    Kind,
    Limits,
    MessageEnvelope,
    RequestCtx,
    Services,
    decode_container,
    decode_envelope,
    decode_envelope_json,
    envelope,
)
from rony.core.errors import (
    AlreadyExistsError,
    InternalError,
    InvalidError,
    MalformedError,
    RequestTimeoutError,
    RonyError,
    UnavailableError,
)
from rony.server._app import App, HandlerEntry
from rony.server._metrics import FIRST_BUCKET as _FIRST
from rony.server._metrics import RequestMetrics
from rony.server.logs import log_access, request_extra

if TYPE_CHECKING:
    from rony.server._tracing import Tracing

__all__ = ["DispatchSettings", "Dispatcher", "Reply", "error_envelope"]

log = logging.getLogger("rony.server")
_monotonic = time.monotonic

Reply = Callable[[MessageEnvelope], None]
"""Where replies of a persistent conn go, one envelope at a time (never blocks)."""


def _foreign_error(exc: BaseException | None) -> RonyError | None:
    """The Rony error of an exception of another of our packages that a handler let escape,
    when it says something the client can act on; None: an internal error (E00).

    rony.store knows nothing of Rony's codes (it depends on nothing of ours), so the mapping
    lives here. It looks the module up instead of importing it: an app that never imported
    rony.store cannot raise its errors, and the dispatcher does not pull in lmdb for them.
    """
    store_errors: Any = sys.modules.get("rony.store.errors")
    if store_errors is None or exc is None:
        return None
    # A repository's create of a key that is taken, and its update of one that is missing:
    # Go Rony's AlreadyExists (E08), and Unavailable (E02, HTTP 404), which Go Rony answers
    # for what is not there.
    if isinstance(exc, store_errors.RecordExistsError):
        return AlreadyExistsError("RECORD", str(exc))
    if isinstance(exc, store_errors.RecordNotFoundError):
        return UnavailableError("RECORD", str(exc))
    return None


def error_envelope(err: RonyError, request_id: int = 0) -> MessageEnvelope:
    return envelope(err.to_message(), request_id)


def _drop_tracebacks(err: BaseException) -> None:
    """Forget the tracebacks of a finished chain's error and of the exceptions it chains.

    A RonyError that a handler raised is kept in ``ctx.error``; its traceback holds the frames
    of the chain, whose locals hold ``ctx``: a reference cycle per failed request, which keeps
    the request (and, over HTTP, aiohttp's request objects) alive until the cyclic collector
    runs, and makes it run often. Post-handlers have seen the traceback by now; the error
    itself (code, items) stays.
    """
    todo: list[BaseException] = [err]
    seen: set[int] = set()
    while todo:
        exc = todo.pop()
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        exc.__traceback__ = None
        if exc.__cause__ is not None:
            todo.append(exc.__cause__)
        if exc.__context__ is not None:
            todo.append(exc.__context__)


class _Dispatch(DispatchCtx):
    """A DispatchCtx whose persistent delivery goes through the transport's ``reply``.

    The transport decides the frame (binary, or a JSON text frame for a JSON request), so the
    same DispatchCtx serves WebSocket, HTTP, the tunnel and the TestClient.
    """

    __slots__ = ("reply",)

    def __init__(
        self,
        conn: Conn,
        kind: Kind,
        server_id: str,
        services: Services | None,
        reply: Reply | None,
        send_encoded: Callable[[bytes], None] | None = None,
    ) -> None:
        # DispatchCtx.__init__'s fields, set here without the keyword call (hot path).
        self.conn = conn
        self.kind = kind
        self.server_id = server_id
        self.services = services
        self.values = {}
        self.buffer = []
        self.send_encoded = send_encoded
        self.reply = reply

    def deliver(self, env: MessageEnvelope) -> None:
        if self.reply is not None:
            self.reply(env)
        else:
            self.buffer.append(env)


@dataclass(frozen=True, slots=True)
class DispatchSettings:
    """The part of EdgeSettings the dispatcher reads."""

    server_id: str = ""
    limits: Limits = DEFAULT_LIMITS
    handler_timeout: float | None = 30.0
    json_enabled: bool = True
    metrics: bool = True
    access_log: bool = False


class Dispatcher:
    """Runs envelopes through an App's handler chains. One per Edge; stateless per request."""

    def __init__(
        self,
        app: App,
        *,
        settings: DispatchSettings = DispatchSettings(),
        services: Services | None = None,
        builtins: Mapping[int, HandlerEntry] | None = None,
    ) -> None:
        self.app = app
        self.settings = settings
        self.services = services
        self.builtins: dict[int, HandlerEntry] = dict(builtins or {})
        # One DEBUG line per request when the "rony.server" logger is at DEBUG (`rony serve
        # --log-level debug`): read here and when the gateway starts, not per request.
        self.log_requests = log.isEnabledFor(logging.DEBUG)
        # OpenTelemetry spans (rony.server._tracing): set by Edge.start when it traces; None:
        # no span work at all (tracing off, or no SDK installed).
        self.tracing: Tracing | None = None
        # Request counts and durations by constructor (rony.server._metrics); None: not
        # counted (EdgeSettings.metrics off).
        self.metrics: RequestMetrics | None = RequestMetrics() if settings.metrics else None
        # One INFO line per request on "rony.server.access" (rony.server.logs); off, the
        # one test in _execute's finally is all it costs.
        self.access_log = settings.access_log
        # handler_timeout bookkeeping: task -> deadline of the chain it runs, and the tasks
        # the sweeper cancelled (see _execute).
        self._watched: dict[asyncio.Task[Any], float] = {}
        self._fired: set[asyncio.Task[Any]] = set()
        self._sweeper: asyncio.TimerHandle | None = None
        timeout = settings.handler_timeout
        self._sweep_every = min(1.0, timeout / 4) if timeout is not None else 1.0

    def deadline_of(self, task: asyncio.Task[Any] | None) -> float | None:
        """The loop time by which the request that ``task`` runs must end (its
        handler_timeout), or None when it has none: a call it makes elsewhere is bounded by it."""
        return self._watched.get(task) if task is not None else None

    # --- decoding ----------------------------------------------------------------------------

    def decode(self, data: bytes, *, json: bool = False) -> MessageEnvelope:
        """Bytes -> envelope, or ``MalformedError`` (E01 REQUEST)."""
        if json:
            if not self.settings.json_enabled:
                raise MalformedError("REQUEST", "JSON envelopes are disabled on this server")
            return decode_envelope_json(data, self.settings.limits)
        return decode_envelope(data, self.settings.limits)

    # dispatch_bytes and dispatch are plain functions returning the coroutine that does the
    # work: one coroutine per request instead of a chain of four (each level of ``await`` costs
    # a coroutine object and a frame, ~0.3 µs). Callers ``await`` them as before.

    def dispatch_bytes(
        self,
        conn: Conn,
        data: bytes,
        *,
        json: bool = False,
        kind: Kind = Kind.GATEWAY,
        reply: Reply | None = None,
        task: asyncio.Task[Any] | None = None,
        now: float = 0.0,
    ) -> Coroutine[Any, Any, list[MessageEnvelope]]:
        """Decode and dispatch one received unit; a bad one gets an Error reply, never silence.

        Returns the awaitable of ``dispatch`` (the replies buffered for a non-persistent conn).
        ``task`` and ``now``: the task that will run it and the loop's time, when the caller
        knows them (the gateway does): saves the chain looking them up, which costs a getpid()
        system call in CPython 3.11's ``asyncio.get_running_loop``.
        """
        try:
            if json:
                env = self.decode(data, json=True)
            else:
                env = decode_envelope(data, self.settings.limits)
        except MalformedError as err:
            return self._bad_envelope(conn, err, reply)
        return self.dispatch(conn, env, kind=kind, reply=reply, task=task, now=now)

    def dispatch_frame(
        self,
        conn: Conn,
        data: bytes,
        reply: Reply,
        send_encoded: Callable[[bytes], None],
        task: asyncio.Task[Any],
        now: float,
    ) -> Coroutine[Any, Any, list[MessageEnvelope]]:
        """``dispatch_bytes`` for one binary gateway unit (a WebSocket frame, an HTTP body)
        whose task and loop time the caller knows: the same work, without the keyword call
        and the two steps between (the gateway calls this once per frame or request).
        ``send_encoded`` takes an encoded envelope: the plain replies go there as bytes (see
        ``DispatchCtx.send_encoded``), the rest through ``reply``."""
        try:
            env = decode_envelope(data, self.settings.limits)
        except MalformedError as err:
            return self._bad_envelope(conn, err, reply)
        # (dispatch's body, with send_encoded)
        dctx = _Dispatch(
            conn, Kind.GATEWAY, self.settings.server_id, self.services, reply, send_encoded
        )
        ctx = RequestCtx(dctx, env)  # (dctx.new_request(env), one call fewer)
        if ctx.constructor == C_MessageContainer:
            return self._container(dctx, env)
        return self._execute(ctx, None, True, task, now)

    async def _bad_envelope(
        self, conn: Conn, err: MalformedError, reply: Reply | None
    ) -> list[MessageEnvelope]:
        fields = {"server_id": self.settings.server_id, "conn_id": conn.conn_id}
        log.info(
            "conn %s sent a bad envelope: %s", conn.conn_id, err, extra={"rony_fields": fields}
        )
        bad = error_envelope(err)
        if reply is not None:
            reply(bad)
            return []
        return [bad]

    # --- execution ---------------------------------------------------------------------------

    def dispatch(
        self,
        conn: Conn,
        env: MessageEnvelope,
        *,
        kind: Kind = Kind.GATEWAY,
        reply: Reply | None = None,
        task: asyncio.Task[Any] | None = None,
        now: float = 0.0,
    ) -> Coroutine[Any, Any, list[MessageEnvelope]]:
        """Run one envelope (or container); the awaitable gives the buffered replies (empty
        with ``reply``). ``task`` and ``now`` as for ``dispatch_bytes``."""
        dctx = _Dispatch(conn, kind, self.settings.server_id, self.services, reply)
        ctx = RequestCtx(dctx, env)
        if ctx.constructor == C_MessageContainer:
            return self._container(dctx, env)
        return self._execute(ctx, None, True, task, now)

    async def _container(self, dctx: _Dispatch, env: MessageEnvelope) -> list[MessageEnvelope]:
        await self._run_container(dctx, env)
        return dctx.drain()

    async def _run_container(self, dctx: _Dispatch, env: MessageEnvelope) -> None:
        try:
            container = decode_container(env, self.settings.limits)
        except MalformedError as err:
            log.info("conn %s sent a bad container: %s", dctx.conn.conn_id, err)
            dctx.deliver(error_envelope(err, env.RequestID))
            return
        envs = container.Envelopes
        if not envs:
            return
        if not container.SyncRun:
            await asyncio.gather(*[self._execute(dctx.new_request(e)) for e in envs])
            return
        # SyncRun: start each envelope only when the previous one finished its chain or called
        # ctx.next_can_go(); then wait for all of them (as Go Rony's nextChan).
        loop = asyncio.get_running_loop()
        tasks: list[asyncio.Task[list[MessageEnvelope]]] = []
        try:
            for e in envs:
                released = loop.create_future()
                tasks.append(asyncio.ensure_future(self._execute(dctx.new_request(e), released)))
                await released
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()

    async def _execute(
        self,
        ctx: RequestCtx,
        released: asyncio.Future[None] | None = None,
        drain: bool = False,
        task: asyncio.Task[Any] | None = None,
        now: float = 0.0,
    ) -> list[MessageEnvelope]:
        """One envelope: find the chain, run it under handler_timeout; with ``drain`` return
        the dispatch's buffered replies (a lone envelope), else an empty list. ``task`` and
        ``now``: the running task and the loop's time, if the caller knows them.

        The chain (pre-handlers, handlers, post-handlers) runs inline here rather than in a
        helper coroutine: one coroutine per request is a measurable share of a small one.
        """
        dctx = ctx.dispatch
        if released is not None:
            ctx.on_release(lambda: None if released.done() else released.set_result(None))
        traced: Any = None  # what tracing.begin opened (a span, or the unsampled decision)
        metrics = self.metrics
        started = now or _monotonic()  # (the request's start, for its duration metric)
        entry: HandlerEntry | None = None
        done = False
        try:
            constructor = ctx.constructor
            entry = self.app.handlers.get(constructor) or self.builtins.get(constructor)
            if entry is None or (entry.internal and dctx.kind is Kind.GATEWAY):
                # An internal (rony_internal) method is refused from the gateway, and looks the
                # same as an unknown one. Go Rony never enforced it (inventory §14 weakness 1).
                entry = None  # (an internal one counts as unknown too)
                ctx.push_error(InvalidError("HANDLER", f"no handler for {constructor}"))
                if self.log_requests:
                    log.debug("conn %s request %d: no handler for %d", ctx.conn_id,
                              ctx.request_id, constructor, extra=request_extra(ctx))  # fmt: skip
                return dctx.drain() if drain and dctx.buffer else []
            if self.log_requests:
                log.debug("conn %s request %d: %s (%d) from %s", ctx.conn_id, ctx.request_id,
                          entry.display_name, constructor, ctx.conn.client_ip,
                          extra=request_extra(ctx))  # fmt: skip
            tracing = self.tracing
            if tracing is not None and not entry.builtin:
                traced = tracing.begin(ctx, entry)
            limit = self.settings.handler_timeout
            outer: float | None = None
            watched = self._watched
            fired = self._fired
            if limit is None:
                task = None
            else:
                # handler_timeout (see _sweep): register this task's deadline.
                if task is None:
                    loop = asyncio.get_running_loop()
                    task = asyncio.current_task(loop)
                    assert task is not None
                    now = loop.time()
                # A chain may dispatch another request in its own task (nested): the inner one
                # borrows the entry and gives the outer deadline back.
                outer = watched.get(task)
                watched[task] = now + limit
                if self._sweeper is None:
                    self._sweeper = task.get_loop().call_later(self._sweep_every, self._sweep)
            # handler_timeout's outcome, set off the success path: "cut" when its cancellation
            # ended the chain, "caught" when the chain caught it and finished (see _timed_out).
            fired_as = ""
            try:
                app = self.app
                try:
                    if not entry.builtin and app.pre_handlers:
                        for h in app.pre_handlers:
                            await h(ctx)
                            if ctx.stopped:
                                break
                    if not ctx.stopped:
                        for h in entry.handlers:
                            await h(ctx)
                            if ctx.stopped:
                                break
                except RonyError as err:
                    ctx.push_error(err)
                except Exception:
                    self._internal_error(ctx, entry)
                if not entry.builtin and app.post_handlers:
                    try:
                        for h in app.post_handlers:
                            await h(ctx)
                    except RonyError as err:
                        ctx.push_error(err)
                    except Exception:
                        self._internal_error(ctx, entry)
            except asyncio.CancelledError:
                # Only the timeout's own cancellation is answered with E06. Any other one
                # (Edge.stop after its grace, a handler cancelling its own request) propagates,
                # also when it lands on a chain whose timeout already fired: the task then
                # counts two requests (Python 3.11 Task.cancelling()), ours and that one.
                if task is None or not fired or task not in fired or task.cancelling() > 1:
                    raise
                fired_as = "cut"
            finally:
                if task is not None:
                    if outer is None:
                        del watched[task]
                    else:
                        watched[task] = outer
                    if fired and task in fired:
                        # The timeout fired on this chain: withdraw its cancel request however
                        # the chain ended (an E06, the chain's own answer, or another cancel
                        # propagating), so the task's count holds only the others'.
                        fired.discard(task)
                        task.uncancel()
                        if not fired_as:
                            fired_as = "caught"
            if fired_as:
                assert task is not None
                self._timed_out(ctx, entry, limit, task, fired_as == "cut")
            done = True
        finally:
            if traced is not None:
                self.tracing.end(traced, ctx)  # type: ignore[union-attr]
            if released is not None:  # (only a SyncRun container member has a release)
                ctx.next_can_go()
            if metrics is not None:
                # The usual request (a known series, answered within the first bucket, no
                # error) is counted here, inline; observe() takes the others (one call fewer
                # per request: a quarter of what metrics cost a small request).
                elapsed = _monotonic() - started
                series = None
                if entry is not None:
                    series = metrics.by_kind[dctx.kind].get(entry.constructor)
                if series is not None and done and ctx.error is None and 0.0 < elapsed <= _FIRST:
                    series.buckets[0] += 1
                    series.sum += elapsed
                else:
                    metrics.observe(ctx, entry, elapsed, done or ctx.error is not None)
            if self.access_log:
                log_access(ctx, entry, started, done or ctx.error is not None)
            if ctx.error is not None:
                _drop_tracebacks(ctx.error)
        return dctx.drain() if drain and dctx.buffer else []

    # --- handler_timeout ----------------------------------------------------------------------
    #
    # asyncio.timeout() per request costs a Timeout object and a timer-heap push and pop, a large
    # share of a small request. Instead each running chain registers (task -> deadline) and one
    # sweeper callback, armed only while chains run, cancels the overdue ones every
    # ``handler_timeout / 4`` (at most 1 s); the chain then answers E06. A chain runs in its own
    # task (a gateway WebSocket worker, the HTTP request's task, or gather's task for a
    # container member), so cancelling the task cancels exactly that chain.

    def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        now = loop.time()
        fired = self._fired
        for task, deadline in self._watched.items():
            if deadline <= now and task not in fired:
                fired.add(task)
                task.cancel()
        self._sweeper = loop.call_later(self._sweep_every, self._sweep) if self._watched else None

    def _timed_out(
        self,
        ctx: RequestCtx,
        entry: HandlerEntry,
        limit: float | None,
        task: asyncio.Task[Any],
        cut: bool,
    ) -> None:
        """The handler_timeout fired on this chain, and the chain has ended: give the request
        its one outcome.

        * ``cut``: the timeout's CancelledError ended the chain: the outcome is E06.
        * otherwise the chain caught that CancelledError and finished anyway (returned, or
          raised its own error, already pushed): what it pushed is the outcome, and no E06 is
          added. Adding one answered the same RequestID twice, a reply then E06.

        Why the chain's answer wins, not the deadline: a grpc server, whose handlers cannot be
        interrupted, answers DEADLINE_EXCEEDED at the deadline and throws the late reply away;
        Go Rony has no server-side deadline at all. Here the deadline interrupts the handler
        itself, so a handler that answers after the interruption does so on purpose, and its
        answer is the truth about the request (the work may be done): a reply pushed is a
        reply. The client, which enforces its own deadline, may have given up and drops it as
        any late reply. A chain that catches the cancellation and pushes nothing sends
        nothing, as any chain that pushes nothing. A chain that pushes and then lets the
        cancellation end it gets E06 after what it pushed: the dispatcher keeps no record of a
        request's pushes (that would cost every request); to answer, catch and return.
        """
        if not cut and task.cancelling():
            # Another cancel request (Edge.stop's) came with ours and the chain swallowed
            # both: asyncio delivers requests made before the task resumes as one
            # CancelledError. Ours is withdrawn; that one still ends the chain.
            raise asyncio.CancelledError
        what = "timed out after %ss" if cut else "caught its handler_timeout (%ss) and finished"
        log.warning(
            "%s " + what + " (conn %s, request %s)",
            entry.display_name,
            limit,
            ctx.conn_id,
            ctx.request_id,
            extra=request_extra(ctx),
        )
        if cut:
            ctx.push_error(
                RequestTimeoutError("HANDLER", f"the handler did not finish in {limit}s")
            )

    def _internal_error(self, ctx: RequestCtx, entry: HandlerEntry) -> None:
        known = _foreign_error(sys.exc_info()[1])
        if known is not None:
            ctx.push_error(known)
            return
        log.error(
            "%s raised (conn %s, request %s)",
            entry.display_name,
            ctx.conn_id,
            ctx.request_id,
            exc_info=True,
            extra=request_extra(ctx),
        )
        # The client learns only that the server failed; the traceback stays in the log.
        ctx.push_error(InternalError("SERVER"))
