"""The client's protocol core: everything that is not I/O, shared by ``Client`` and ``AsyncClient``.

Theory of operation
-------------------
A call is an ``Exchange``: a small state machine that the twin drives in a loop::

    ex = core.exchange(env, now=clock())
    while True:
        action = ex.next(clock())
        Send(url, ...)  -> the twin writes ``ex.frame`` to ``url`` and reports back with
                           ``ex.on_reply(reply, now)`` or ``ex.on_error(client_error, now)``
        Wait(seconds)   -> the twin sleeps (back-off, a Redirect's WaitInSec, a penalised seed)
        Done(reply)     -> return it
        Fail(error)     -> raise it

The exchange decides retries (only when the request was not written, unless the caller said the
call is idempotent), back-off with jitter, failover between seed URLs, redirects (session:
switch the client's replica set; request: this call only; ``WaitInSec`` honoured) and the overall
deadline. Time is passed in, so all of it is tested with a manual clock.

``Routing`` knows the seed URLs, the edges learned from ``GetNodes``/``Redirect`` by replica set,
the session replica set, and which URLs failed recently (penalised for a back-off period).

``Pending`` matches replies to waiters by RequestID across connections; a reply with RequestID
0, or one no request is waiting for, is a server push. Replies that arrive after their request
gave up (timed out) are remembered for a while and dropped, so they are not mistaken for pushes.

``decode_frame`` turns one frame (or HTTP body) into envelopes, unpacking a MessageContainer.
``PushQueue`` is the bounded, drop-oldest buffer each push consumer reads from.
"""

from __future__ import annotations

import itertools
import random
import urllib.parse
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Generic, Literal, NamedTuple, TypeVar

from google.protobuf.message import Message

from rony.client._settings import ClientSettings
from rony.client._tracing import add_trace, trace_header
from rony.client.errors import (
    ClientError,
    ConnectError,
    ConnectionLost,
    DecodeError,
    FrameTooLarge,
    RequestTimeout,
    RetriesExceeded,
    TooManyRedirects,
    UnexpectedResponse,
)
from rony.core import (
    C_Error,
    C_MessageContainer,
    C_Redirect,
    Edge,
    KeyValue,
    Limits,
    MessageContainer,
    MessageEnvelope,
    Redirect,
    RedirectReason,
    constructor_of,
    decode_envelope,
    decode_envelope_json,
    encode_envelope_json,
    envelope_bytes,
    errors,
    message_from_json,
    message_to_json,
    registry,
    unwrap,
)
from rony.core import Error as ErrorMessage

__all__ = [
    "Action",
    "Backoff",
    "ClientCore",
    "Done",
    "Exchange",
    "Fail",
    "Pending",
    "PushQueue",
    "RequestIds",
    "Routing",
    "Send",
    "Wait",
    "decode_frame",
    "match_http_replies",
    "normalize_url",
    "reply_message",
]

T = TypeVar("T")
_FOREVER = float("inf")
Encoding = Literal["protobuf", "json"]
"""How requests and replies are encoded: protobuf envelopes, or Go Rony's JSON envelopes."""
Scheme = Literal["ws", "http"]
_MASK64 = 0xFFFF_FFFF_FFFF_FFFF


# --- small parts ----------------------------------------------------------------------------------


class Backoff:
    """Exponential back-off with jitter: ``min(max, base * 2**n) * U[1 - jitter, 1]``."""

    __slots__ = ("base", "jitter", "maximum", "rng")

    def __init__(
        self, base: float, maximum: float, jitter: float, rng: random.Random | None = None
    ) -> None:
        self.base = base
        self.maximum = maximum
        self.jitter = jitter
        self.rng = rng or random.Random()

    def delay(self, attempt: int) -> float:
        """The wait before retry number ``attempt`` (0 = the first retry)."""
        raw: float = min(self.maximum, self.base * float(2 ** min(attempt, 62)))
        return raw * (1.0 - self.jitter * self.rng.random())


class RequestIds:
    """Request ids: a counter from a random start (as Go's edgec), never 0 (0 marks a push)."""

    __slots__ = ("_counter",)

    def __init__(self, rng: random.Random | None = None, start: int | None = None) -> None:
        first = start if start is not None else (rng or random.Random()).randrange(1, 2**62)
        self._counter = itertools.count(first)  # next() is atomic under the GIL

    def next(self) -> int:
        rid = next(self._counter) & _MASK64
        while rid == 0:
            rid = next(self._counter) & _MASK64
        return rid


def normalize_url(url: str, transport: Scheme) -> str:
    """``host:port`` or any ws/wss/http/https URL -> the URL this transport dials.

    A ``ws`` client turns ``http://h:p/x`` into ``ws://h:p/x`` (and https into wss); an
    ``http`` client the other way round. The path defaults to ``/``.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"not a URL: {url!r}")
    if "://" not in url:
        url = f"{transport}://{url}"
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("ws", "wss", "http", "https"):
        raise ValueError(f"unsupported URL scheme {parts.scheme!r} in {url!r}")
    secure = scheme in ("wss", "https")
    scheme = {"ws": ("ws", "wss"), "http": ("http", "https")}[transport][secure]
    if not parts.hostname:
        raise ValueError(f"URL has no host: {url!r}")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError as exc:
        raise ValueError(f"bad port in {url!r}: {exc}") from None
    path = parts.path or "/"
    return urllib.parse.urlunsplit((scheme, parts.netloc, path, parts.query, ""))


# --- frames ---------------------------------------------------------------------------------------


def decode_frame(
    data: bytes | bytearray | memoryview | str, limits: Limits, *, json: bool = False
) -> list[MessageEnvelope]:
    """One WebSocket frame or HTTP body -> its envelopes (a container is unpacked).

    Empty data holds no envelope. Raises ``FrameTooLarge`` over ``limits.max_message_size`` and
    ``DecodeError`` for bytes that are not an envelope. A text frame (and, with ``json``, an
    HTTP body) is read as Go Rony's JSON envelope.
    """
    if not data:
        return []  # an HTTP 204 (the handler pushed nothing), or an empty frame
    try:
        if isinstance(data, str):
            env = decode_envelope_json(data, limits)
        elif json:
            env = decode_envelope_json(bytes(data), limits)
        else:
            env = decode_envelope(data, limits)
    except errors.RonyError as exc:
        # (both decoders check the size before parsing: an oversized frame is not parsed)
        if len(data) > limits.max_message_size:
            raise FrameTooLarge(
                f"received {len(data)} bytes; max_message_size is {limits.max_message_size}",
                written=True,
            ) from None
        raise DecodeError(f"reply does not decode: {exc.description or exc}") from None
    if env.Constructor != C_MessageContainer:
        return [env]
    container = MessageContainer()
    try:
        if env.JsonEncoded:
            # Several replies to a JSON request (an HTTP body): the container in protobuf's
            # JSON mapping, its envelopes' payloads in base64 (binary, or JSON when marked).
            container = message_from_json(env.Message, MessageContainer, limits)
        else:
            container.ParseFromString(env.Message)
    except errors.RonyError as exc:
        raise DecodeError(f"reply container does not decode: {exc.description}") from None
    except Exception as exc:  # protobuf's DecodeError
        raise DecodeError(f"reply container does not decode: {exc}") from None
    if len(container.Envelopes) > limits.max_container_length:
        raise DecodeError(
            f"reply container holds {len(container.Envelopes)} envelopes; "
            f"max_container_length is {limits.max_container_length}"
        )
    return list(container.Envelopes)


# --- pending requests -----------------------------------------------------------------------------


class Pending(Generic[T]):
    """RequestID -> (connection key, waiter, deadline). Not thread-safe: the sync twin holds a
    lock.

    ``late_memory`` ids of abandoned requests are remembered so that their late replies are
    dropped instead of being delivered as pushes. ``expire`` serves a twin that checks
    deadlines in batches (one timer per time slot instead of one per request).
    """

    __slots__ = ("_by_id", "_late", "_late_memory", "late_replies")

    def __init__(self, late_memory: int = 4096) -> None:
        self._by_id: dict[int, tuple[object, T, float]] = {}
        self._late: OrderedDict[int, None] = OrderedDict()
        self._late_memory = late_memory
        self.late_replies = 0

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, request_id: object) -> bool:
        return request_id in self._by_id

    def add(self, request_id: int, link: object, waiter: T, deadline: float = _FOREVER) -> None:
        if request_id in self._by_id:
            raise ValueError(f"request id {request_id} is already in flight")
        self._by_id[request_id] = (link, waiter, deadline)

    def resolve(self, request_id: int) -> T | None:
        """The waiter of a reply (removed), or None for a push / a late reply."""
        entry = self._by_id.pop(request_id, None)
        return entry[1] if entry is not None else None

    def is_late(self, request_id: int) -> bool:
        """True (and counted) when ``request_id`` belongs to a request that gave up."""
        if request_id in self._late:
            self.late_replies += 1
            return True
        return False

    def _remember(self, request_id: int) -> None:
        self._late[request_id] = None
        if len(self._late) > self._late_memory:
            self._late.popitem(last=False)

    def discard(self, request_id: int, *, abandoned: bool = False) -> None:
        """Forget a request; ``abandoned`` (it timed out): drop its reply if one comes later."""
        if self._by_id.pop(request_id, None) is not None and abandoned:
            self._remember(request_id)

    def expire(self, request_ids: Iterable[int], now: float) -> list[T]:
        """Remove (as abandoned) and return the waiters among ``request_ids`` whose deadline
        has passed; ids already answered, or re-used with a later deadline, are left alone."""
        by_id = self._by_id
        out = []
        for rid in request_ids:
            entry = by_id.get(rid)
            if entry is not None and entry[2] <= now:
                del by_id[rid]
                self._remember(rid)
                out.append(entry[1])
        return out

    def lose(self, link: object) -> list[T]:
        """Remove and return every waiter on a connection that dropped."""
        ids = [rid for rid, entry in self._by_id.items() if entry[0] is link]
        return [self._by_id.pop(rid)[1] for rid in ids]

    def lose_all(self) -> list[T]:
        waiters = [entry[1] for entry in self._by_id.values()]
        self._by_id.clear()
        return waiters


class PushQueue(Generic[T]):
    """A bounded FIFO that never blocks the producer: when full, the oldest item is dropped."""

    __slots__ = ("_items", "dropped")

    def __init__(self, maxsize: int) -> None:
        self._items: deque[T] = deque(maxlen=maxsize)
        self.dropped = 0

    def put(self, item: T) -> bool:
        """Append; False when that pushed the oldest item out."""
        full = len(self._items) == self._items.maxlen
        if full:
            self.dropped += 1
        self._items.append(item)
        return not full

    def get(self) -> T:
        return self._items.popleft()

    def __len__(self) -> int:
        return len(self._items)

    def __bool__(self) -> bool:
        return bool(self._items)


# --- routing --------------------------------------------------------------------------------------


class Routing:
    """Where requests go: seeds, edges by replica set, the session replica set, penalties."""

    def __init__(self, seeds: Sequence[str], transport: Scheme, backoff: Backoff) -> None:
        if not seeds:
            raise ValueError("at least one URL is needed")
        self.transport: Scheme = transport
        self.seeds = list(dict.fromkeys(normalize_url(u, transport) for u in seeds))
        first = urllib.parse.urlsplit(self.seeds[0])
        self._scheme = first.scheme
        self._path = first.path or "/"
        self._backoff = backoff
        self.edges: dict[int, list[str]] = {}
        self.server_ids: dict[str, str] = {}  # url -> server id
        self.session_replica_set: int | None = None
        self._failures: dict[str, int] = {}
        self._penalty: dict[str, float] = {}

    def edge_urls(self, edge: Edge) -> list[str]:
        """Every host:port of an edge, as URLs (Go's client only ever dialled the first)."""
        urls = []
        for hp in edge.HostPorts:
            if "://" in hp:
                urls.append(normalize_url(hp, self.transport))
            else:
                urls.append(f"{self._scheme}://{hp}{self._path}")
        return urls

    def learn(self, edges: Iterable[Edge]) -> None:
        """Remember where each replica set's edges are (from GetNodes or a Redirect)."""
        fresh: dict[int, list[str]] = {}
        for edge in edges:
            urls = self.edge_urls(edge)
            fresh.setdefault(edge.ReplicaSet, []).extend(urls)
            for u in urls:
                self.server_ids[u] = edge.ServerID
        for rs, urls in fresh.items():
            self.edges[rs] = list(dict.fromkeys(urls))

    def knows(self, replica_set: int) -> bool:
        return bool(self.edges.get(replica_set))

    def candidates(self, replica_set: int | None = None) -> list[str]:
        """Request-level replica set, else the session's, else the seeds."""
        if replica_set is None:
            replica_set = self.session_replica_set
        if replica_set is not None:
            urls = self.edges.get(replica_set)
            if urls:
                return urls
        return self.seeds

    def direct(self) -> str | None:
        """Where a request with no replica set of its own goes when there is nothing to decide
        (no URL penalised): what ``pick(None, now)`` gives then; None otherwise."""
        return None if self._penalty else self.candidates(None)[0]

    def pick(self, replica_set: int | None, now: float) -> tuple[str, float]:
        """The URL to use and how long to wait first (>0 only when all are penalised)."""
        urls = self.candidates(replica_set)
        penalty = self._penalty
        if not penalty:
            return urls[0], 0.0
        best = urls[0]
        best_until = penalty.get(best, 0.0)
        for url in urls:
            until = penalty.get(url, 0.0)
            if until <= now:
                return url, 0.0
            if until < best_until:
                best, best_until = url, until
        return best, best_until - now

    def failed(self, url: str, now: float) -> float:
        """A dial to ``url`` failed: penalise it for the next back-off period; return that."""
        n = self._failures.get(url, 0)
        self._failures[url] = n + 1
        delay = self._backoff.delay(n)
        self._penalty[url] = now + delay
        return delay

    def succeeded(self, url: str) -> None:
        if self._penalty:
            self._penalty.pop(url, None)
            self._failures.pop(url, None)


# --- the exchange ---------------------------------------------------------------------------------


# Actions are NamedTuples: made once or twice per call, so they must be cheap to build.


class Send(NamedTuple):
    """Write ``Exchange.frame`` to ``url``; wait at most ``timeout`` for the reply."""

    url: str
    timeout: float
    dial_timeout: float


class Wait(NamedTuple):
    seconds: float


class Done(NamedTuple):
    reply: MessageEnvelope | None
    replies: list[MessageEnvelope] | None = None


class Fail(NamedTuple):
    error: BaseException


Action = Send | Wait | Done | Fail


class Exchange:
    """One request's life (or one batch's): attempts, retries, failover, redirects, deadline."""

    __slots__ = (
        "_core",
        "_done",
        "_error",
        "_wait_until",
        "batch",
        "deadline",
        "failures",
        "frame",
        "idempotent",
        "last_error",
        "redirects",
        "replica_set",
        "request_ids",
        "url",
    )

    def __init__(
        self,
        core: ClientCore,
        frame: bytes,
        request_ids: tuple[int, ...],
        *,
        deadline: float,
        batch: bool = False,
        idempotent: bool = False,
        replica_set: int | None = None,
    ) -> None:
        self._core = core
        self.frame = frame
        self.batch = batch
        self.request_ids = request_ids
        self.deadline = deadline
        self.idempotent = idempotent
        self.replica_set = replica_set
        self.failures = 0
        self.redirects = 0
        self.url: str | None = None
        self.last_error: BaseException | None = None
        self._wait_until = 0.0
        self._done: Done | None = None
        self._error: BaseException | None = None

    @property
    def request_id(self) -> int:
        return self.request_ids[0]

    def next(self, now: float) -> Action:
        if self._done is not None:
            return self._done
        if self._error is not None:
            return Fail(self._error)
        remaining = self.deadline - now
        if remaining <= 0:
            return Fail(self._timeout("deadline passed"))
        if self._wait_until > now:
            if self._wait_until >= self.deadline:
                return Fail(self._timeout("the next attempt would start after the deadline"))
            return Wait(self._wait_until - now)
        core = self._core
        url, wait = core.routing.pick(self.replica_set, now)
        if wait > 0:
            if now + wait >= self.deadline:
                return Fail(self._timeout(f"every URL failed recently; next try of {url} is late"))
            self._wait_until = now + wait
            return Wait(wait)
        self.url = url
        rt, dt = core.request_timeout, core.dial_timeout
        return Send(url, rt if rt < remaining else remaining, dt if dt < remaining else remaining)

    def _timeout(self, why: str) -> RequestTimeout:
        last = self.last_error
        text = f"no reply before the deadline ({why})"
        if last is not None:
            text += f"; last error: {last!r}"
        err = RequestTimeout(text, written=bool(getattr(last, "written", False)))
        err.__cause__ = last
        return err

    def on_reply(self, reply: MessageEnvelope, now: float) -> Done | None:
        """The matched reply of a single request; the outcome if that ends the exchange (what
        ``next`` would give), else None."""
        core = self._core
        if core.routing._penalty and self.url is not None:
            core.routing.succeeded(self.url)
        if reply.Constructor == C_Redirect and core.follow_redirects:
            self._follow(reply, now)
            return None
        done = self._done = Done(reply)
        return done

    def on_replies(self, replies: list[MessageEnvelope], now: float) -> None:
        """The matched replies of a batch, in request order (redirects are resumed one by one)."""
        if self.url is not None:
            self._core.routing.succeeded(self.url)
        self._done = Done(None, replies)

    def _follow(self, reply: MessageEnvelope, now: float) -> None:
        s = self._core.settings
        self.redirects += 1
        if self.redirects > s.max_redirects:
            self._error = TooManyRedirects(f"more than {s.max_redirects} redirects")
            return
        try:
            redirect = (
                unwrap(reply, Redirect) if reply.JsonEncoded else Redirect.FromString(reply.Message)
            )
        except Exception as exc:
            self._error = DecodeError(f"Redirect does not decode: {exc}")
            return
        if not redirect.Edges or not any(e.HostPorts for e in redirect.Edges):
            self._error = UnexpectedResponse("Redirect names no edge to go to", C_Redirect)
            return
        routing = self._core.routing
        routing.learn(redirect.Edges)
        target = redirect.Edges[0].ReplicaSet
        if redirect.Reason == RedirectReason.ReplicaSetSession:
            routing.session_replica_set = target
        self.replica_set = target
        self._wait_until = now + redirect.WaitInSec

    def on_error(self, error: ClientError, now: float) -> None:
        """An attempt failed; decide between retry (after back-off) and failure."""
        self.last_error = error
        core = self._core
        if isinstance(error, ConnectError):
            if self.url is not None:
                core.routing.failed(self.url, now)  # pick() fails over or waits it out
            retriable = True
        elif isinstance(error, ConnectionLost | RequestTimeout):
            retriable = not error.written or self.idempotent
            if retriable:
                self._wait_until = now + core.backoff.delay(self.failures)
        else:
            retriable = False
        if not retriable:
            self._error = error
            return
        self.failures += 1
        if self.failures > core.settings.max_retries:
            err = RetriesExceeded(
                f"{self.failures} attempts failed; last: {error}", error, self.failures
            )
            err.__cause__ = error
            self._error = err


# --- the core -------------------------------------------------------------------------------------


class ClientCore:
    """State shared by every request of one client: ids, routing, limits, policies."""

    def __init__(
        self,
        urls: str | Sequence[str],
        *,
        transport: Scheme = "ws",
        settings: ClientSettings | None = None,
        rng: random.Random | None = None,
        encoding: Encoding = "protobuf",
    ) -> None:
        if transport not in ("ws", "http"):
            raise ValueError(f"transport must be 'ws' or 'http', not {transport!r}")
        if encoding not in ("protobuf", "json"):
            raise ValueError(f"encoding must be 'protobuf' or 'json', not {encoding!r}")
        self.encoding: Encoding = encoding
        # JSON mode: every request is Go Rony's JSON envelope (a WS text frame, an HTTP body
        # of Content-Type application/json) and so is every reply the gateway sends back.
        self.json = encoding == "json"
        self.settings = s = settings or ClientSettings()
        if self.json and s.auth:
            raise ValueError(
                "encoding='json' cannot carry ClientSettings.auth (Go Rony's JSON envelope has "
                "no Auth field): send it in a header, or use encoding='protobuf'"
            )
        self.request_timeout = s.request_timeout
        self.dial_timeout = s.dial_timeout
        self.follow_redirects = s.follow_redirects
        self.rng = rng or random.Random()
        self.limits = Limits(
            max_message_size=s.max_message_size, max_container_length=s.max_container_length
        )
        self.backoff = Backoff(s.backoff_base, s.backoff_max, s.backoff_jitter, self.rng)
        self.ids = RequestIds(self.rng)
        seeds = [urls] if isinstance(urls, str) else list(urls)
        self.routing = Routing(seeds, transport, self.backoff)
        self._headers = [KeyValue(Key=k, Value=v) for k, v in s.headers.items()]
        self._auth = s.auth
        self._max_size = s.max_message_size
        self._deadline = s.effective_deadline
        # Auth (field 8) and Header (field 10) of every request, serialised once.
        self._tail = MessageEnvelope(Auth=s.auth, Header=self._headers).SerializeToString()

    # --- building requests ------------------------------------------------------------------------

    def request(
        self,
        constructor: int,
        message: Message,
        header: Mapping[str, str] | None = None,
    ) -> MessageEnvelope:
        """A request envelope with a fresh id, the client's headers and auth."""
        env = MessageEnvelope(
            Constructor=constructor,
            RequestID=self.ids.next(),
            Message=message_to_json(message) if self.json else message.SerializeToString(),
            JsonEncoded=self.json,
            Auth=self._auth,
        )
        if header or self._headers:
            self._add_headers(env, header)
        return env

    def prepare(self, env: MessageEnvelope) -> MessageEnvelope:
        """A copy of a caller's envelope with a request id (kept when set), headers and auth."""
        out = MessageEnvelope()
        out.CopyFrom(env)
        if out.RequestID == 0:
            out.RequestID = self.ids.next()
        if not out.Auth and self.settings.auth:
            out.Auth = self.settings.auth
        self._add_headers(out, None)
        add_trace(out)
        return out

    def _add_headers(self, env: MessageEnvelope, header: Mapping[str, str] | None) -> None:
        if header:
            env.Header.extend(KeyValue(Key=k, Value=v) for k, v in header.items())
        if self._headers:
            have = {kv.Key for kv in env.Header}
            env.Header.extend(kv for kv in self._headers if kv.Key not in have)

    def encode(self, env: MessageEnvelope) -> bytes:
        if self.json:
            return self._within_limit(self._json_frame(env))
        return self._within_limit(env.SerializeToString())

    def _json_frame(self, env: MessageEnvelope) -> bytes:
        """Go Rony's JSON envelope of ``env``. A binary payload is converted through the
        class registered for its constructor; ``Auth`` has no place in Go Rony's JSON
        envelope (nor does the gateway read one there), so JSON mode refuses it rather than
        drop it silently."""
        if env.Auth:
            raise ValueError(
                "encoding='json' cannot carry Auth (Go Rony's JSON envelope has no such "
                "field): send it in a header, or use encoding='protobuf'"
            )
        if env.Constructor == C_MessageContainer:
            raise ValueError(
                "encoding='json' has no batches: the gateway reads a MessageContainer only as "
                "protobuf (use encoding='protobuf', or send the envelopes one by one)"
            )
        try:
            return encode_envelope_json(env)
        except errors.RonyError as exc:
            raise ValueError(
                f"this envelope cannot be sent as JSON ({exc.description}): register its "
                "message class, or build it with envelope(..., json_encoded=True)"
            ) from None

    def _within_limit(self, frame: bytes) -> bytes:
        """``frame``, or ``FrameTooLarge`` (nothing written) when it is over max_message_size."""
        if len(frame) > self._max_size:
            raise FrameTooLarge(
                f"request is {len(frame)} bytes; max_message_size is {self._max_size}",
                written=False,
            )
        return frame

    def exchange(
        self,
        env: MessageEnvelope,
        now: float,
        *,
        timeout: float | None = None,
        idempotent: bool = False,
        replica_set: int | None = None,
    ) -> Exchange:
        return Exchange(
            self,
            self.encode(env),
            (env.RequestID,),
            deadline=self.deadline(now, timeout),
            idempotent=idempotent,
            replica_set=replica_set,
        )

    def call_exchange(
        self,
        constructor: int,
        message: Message,
        header: Mapping[str, str] | None,
        now: float,
        *,
        timeout: float | None = None,
        idempotent: bool = False,
        replica_set: int | None = None,
    ) -> Exchange:
        """``exchange(request(...))`` for the hot path: the frame is written directly."""
        header = trace_header(header)  # (the caller's span, if any: see _tracing)
        if header or not constructor or self.json:
            return self.exchange(
                self.request(constructor, message, header),
                now,
                timeout=timeout,
                idempotent=idempotent,
                replica_set=replica_set,
            )
        rid, frame = self.call_frame(constructor, message)
        return Exchange(
            self,
            frame,
            (rid,),
            deadline=self.deadline(now, timeout),
            idempotent=idempotent,
            replica_set=replica_set,
        )

    def call_frame(self, constructor: int, message: Message) -> tuple[int, bytes]:
        """A fresh request id and the frame of ``message`` under it (no per-call header),
        or ``FrameTooLarge``."""
        if self.json:
            env = self.request(constructor, message)
            return env.RequestID, self.encode(env)
        rid = self.ids.next()
        return rid, self._within_limit(
            self.request_frame(constructor, rid, message.SerializeToString())
        )

    def deadline(self, now: float, timeout: float | None) -> float:
        """When a call made at ``now`` gives up: ``timeout`` or the settings' deadline."""
        return now + (timeout if timeout is not None else self._deadline)

    def request_frame(self, constructor: int, request_id: int, payload: bytes) -> bytes:
        """The bytes of ``MessageEnvelope(Constructor, RequestID, Message=payload)`` plus the
        client's auth and headers, exactly as protobuf serialises it (fields in number order;
        a test checks byte equality): ``envelope_bytes`` writes the first three fields, the
        precomputed tail the rest (fields 8 and 10 follow field 4)."""
        frame = envelope_bytes(constructor, request_id, payload)
        return frame + self._tail if self._tail else frame

    def batch(
        self,
        envs: Sequence[MessageEnvelope],
        now: float,
        *,
        sync_run: bool = False,
        timeout: float | None = None,
        replica_set: int | None = None,
    ) -> Exchange:
        """One exchange carrying a MessageContainer of ``envs`` (already ``prepare``d)."""
        if not envs:
            raise ValueError("send_batch needs at least one envelope")
        if self.json:
            raise ValueError(
                "send_batch is not available with encoding='json': the gateway reads a "
                "MessageContainer only as protobuf"
            )
        if len(envs) > self.limits.max_container_length:
            raise ValueError(
                f"{len(envs)} envelopes; max_container_length is {self.limits.max_container_length}"
            )
        ids = tuple(e.RequestID for e in envs)
        if len(set(ids)) != len(ids):
            raise ValueError("envelopes of one batch need distinct request ids")
        container = MessageContainer(Length=len(envs), Envelopes=envs, SyncRun=sync_run)
        env = MessageEnvelope(Constructor=C_MessageContainer, Message=container.SerializeToString())
        return Exchange(
            self,
            self.encode(env),
            ids,
            deadline=self.deadline(now, timeout),
            batch=True,
            replica_set=replica_set,
        )

    def resume(
        self, env: MessageEnvelope, redirect: MessageEnvelope, now: float, deadline: float
    ) -> Exchange:
        """An exchange for one batch member whose reply was a Redirect, already following it."""
        ex = Exchange(self, self.encode(env), (env.RequestID,), deadline=deadline)
        ex.on_reply(redirect, now)
        return ex

    # --- reading replies --------------------------------------------------------------------------

    def decode_frame(self, data: bytes | bytearray | memoryview | str) -> list[MessageEnvelope]:
        return decode_frame(data, self.limits, json=self.json)


def match_http_replies(
    envs: list[MessageEnvelope],
    request_ids: tuple[int, ...],
    push: Callable[[MessageEnvelope], None],
) -> list[MessageEnvelope]:
    """The replies of one HTTP exchange, in request order; other envelopes go to ``push``.

    HTTP has no later: a request id the body does not answer raises ``UnexpectedResponse``.
    """
    found: dict[int, MessageEnvelope] = {}
    orphans: list[MessageEnvelope] = []
    wanted = set(request_ids)
    for env in envs:
        rid = env.RequestID
        if rid in wanted and rid not in found:
            found[rid] = env
        else:
            orphans.append(env)
    if len(request_ids) == 1 and not found and len(orphans) == 1 and orphans[0].RequestID == 0:
        # A gateway-level reply (an Error for an envelope it could not read) carries no id.
        found[request_ids[0]] = orphans.pop()
    for env in orphans:
        push(env)
    missing = [rid for rid in request_ids if rid not in found]
    if missing:
        raise UnexpectedResponse(
            f"the HTTP reply carries no envelope for request id(s) {missing[:5]}"
        )
    return [found[rid] for rid in request_ids]


def reply_message(env: MessageEnvelope, response_class: type[Message] | None = None) -> Message:
    """The payload of a reply: an ``Error`` raises its ``RonyError`` class; a class mismatch
    raises ``UnexpectedResponse``; a payload that does not decode raises ``DecodeError``."""
    constructor = env.Constructor
    if constructor == C_Error:
        try:
            err = unwrap(env, ErrorMessage)
        except errors.RonyError as exc:
            raise DecodeError(f"Error reply does not decode: {exc.description}") from None
        assert isinstance(err, ErrorMessage)
        raise errors.from_message(err)
    if response_class is not None:
        if constructor != constructor_of(response_class):
            name = registry.name_of(constructor) or str(constructor)
            raise UnexpectedResponse(
                f"expected {response_class.DESCRIPTOR.name}, got {name}", constructor
            )
    elif constructor not in registry:
        raise UnexpectedResponse(f"reply has unknown constructor {constructor}", constructor)
    try:
        if response_class is not None and not env.JsonEncoded:
            return response_class.FromString(env.Message)
        return unwrap(env, response_class)
    except errors.RonyError as exc:
        raise DecodeError(f"reply payload does not decode: {exc.description}") from None
    except Exception as exc:  # protobuf's DecodeError from FromString
        raise DecodeError(f"reply payload does not decode: {exc}") from None
