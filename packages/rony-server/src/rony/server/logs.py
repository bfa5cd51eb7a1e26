"""Structured logs: one handler for ``rony serve``, text or JSON lines, and the access log.

Theory of operation
-------------------
rony's loggers form one tree under ``rony.server`` (``rony.server`` itself, ``.cluster``,
``.access``, ...). A record about a request carries its fields as one attribute,
``rony_fields`` (a dict, passed as ``extra=request_extra(ctx)``): request id, conn id, server
id and, when the request is sampled, its trace id. An unsampled request has no trace id worth
printing (the ids of the shared unsampled context mean nothing), so it gets none.

``configure`` (``rony serve``) puts one stderr handler on the root logger, as ``basicConfig``
would, with ``TextFormatter`` or ``JsonFormatter`` (``--log-format``) and a ``ServerIdFilter``
that gives every record (rony's and the app's) the node's server id.

* JSON: one object per line: ``time`` (UTC, ISO 8601, ms), ``level``, ``logger``,
  ``message``, ``server_id``, then the record's fields, and ``exc`` (the traceback) if any.
  64-bit ids (request id, constructor) are strings: a JSON reader with doubles (jq, JS)
  would round them.
* text: ``TIME LEVEL LOGGER: MESSAGE key=value ...``; control characters of the message are
  escaped (``\\n``), so a client-controlled string cannot forge a line.

The access log (``EdgeSettings.access_log``, ``--access-log``) is one INFO line per request on
``rony.server.access``: kind, method name, outcome (``OK`` or the error's code and items),
duration and the client address. Off, it costs the dispatcher one attribute test per request.

What is never logged: the envelope's Auth, its headers other than the trace id, message
bodies, tokens, TLS keys. A request line is made from the fields above only.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from rony.core import Kind, RequestCtx, registry

if TYPE_CHECKING:
    from rony.server._app import HandlerEntry

__all__ = [
    "LOG_FORMATS",
    "JsonFormatter",
    "LogSetup",
    "ServerIdFilter",
    "TextFormatter",
    "configure",
    "log_access",
    "request_extra",
]

LOG_FORMATS = ("text", "json")
"""The values of the ``log_format`` setting (``--log-format``)."""

access_log = logging.getLogger("rony.server.access")
_monotonic = time.monotonic

# LogRecord's own attributes: anything else on a record came through ``extra``.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "rony_fields",
    "server_id",
}


def request_fields(ctx: RequestCtx) -> dict[str, Any]:
    """The fields every log line about a request carries."""
    dctx = ctx.dispatch
    fields: dict[str, Any] = {
        "server_id": dctx.server_id,
        "conn_id": ctx.conn_id,
        "request_id": str(ctx.request_id),
    }
    span = ctx._span
    if span is not None:  # (set only for a sampled request: see rony.server._tracing)
        trace_id = span.get_span_context().trace_id
        if trace_id:
            fields["trace_id"] = f"{trace_id:032x}"
    return fields


def request_extra(ctx: RequestCtx, **more: Any) -> dict[str, Any]:
    """``extra=`` for a log call about a request: its fields, and ``more``."""
    fields = request_fields(ctx)
    fields.update(more)
    return {"rony_fields": fields}


def method_name(entry: HandlerEntry | None, constructor: int) -> str:
    """The handler's ``display_name``; with no handler, the constructor's message name or
    its bare number."""
    if entry is not None:
        return entry.display_name
    return registry.name_of(constructor) or str(constructor)


def log_access(ctx: RequestCtx, entry: HandlerEntry | None, started: float, done: bool) -> None:
    """The access log's line for one finished request (``done`` False: it was cancelled)."""
    duration_ms = round((_monotonic() - started) * 1000.0, 3)
    err = ctx.error
    if err is not None:
        outcome = f"{err.code}:{err.items}" if err.items else err.code
    else:
        outcome = "OK" if done else "CANCELLED"
    dctx = ctx.dispatch
    kind = "tunnel" if dctx.kind is Kind.TUNNEL else "gateway"
    name = method_name(entry, ctx.constructor)
    client = dctx.conn.client_ip
    extra = request_extra(
        ctx,
        kind=kind,
        method=name,
        constructor=str(ctx.constructor),
        outcome=outcome,
        duration_ms=duration_ms,
        client=client,
    )
    access_log.info("%s %s %s %.3f ms %s", kind, name, outcome, duration_ms, client, extra=extra)


# --- formatters -------------------------------------------------------------------------------


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    """The record's fields: server id first, then ``rony_fields``, then other ``extra`` keys."""
    out: dict[str, Any] = {}
    server_id = getattr(record, "server_id", None)
    fields = getattr(record, "rony_fields", None)
    if isinstance(fields, dict):
        out.update(fields)
    if server_id and not out.get("server_id"):
        out["server_id"] = server_id
    for key, value in vars(record).items():
        if key not in _RECORD_ATTRS and key not in out:
            out[key] = value
    return out


def _time(record: logging.LogRecord) -> str:
    stamp = datetime.fromtimestamp(record.created, tz=UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the fields, exc."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _time(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in _fields(record).items():
            out.setdefault(key, value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exc"] = record.exc_text
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


_ESCAPES = {i: f"\\x{i:02x}" for i in range(32)} | {10: "\\n", 13: "\\r", 9: "\\t", 127: "\\x7f"}


def _text_value(value: Any) -> str:
    text = str(value)
    if not text or any(c in text for c in ' "=') or not text.isprintable():
        return json.dumps(text, ensure_ascii=False)
    return text


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE key=value ...`` with the message's control characters
    escaped; a traceback follows on its own lines, as the stdlib prints it."""

    def format(self, record: logging.LogRecord) -> str:
        line = (
            f"{_time(record)} {record.levelname} {record.name}: "
            f"{record.getMessage().translate(_ESCAPES)}"
        )
        fields = _fields(record)
        if fields:
            line += " " + " ".join(f"{k}={_text_value(v)}" for k, v in fields.items())
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
        elif record.exc_text:
            line += "\n" + record.exc_text
        if record.stack_info:
            line += "\n" + self.formatStack(record.stack_info)
        return line


class ServerIdFilter(logging.Filter):
    """Gives every record through the handler the node's server id (``server_id`` is set
    once the settings are read; a record about a request carries its own in its fields)."""

    def __init__(self, server_id: str = "") -> None:
        super().__init__()
        self.server_id = server_id

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "server_id"):
            record.server_id = self.server_id
        return True


class LogSetup:
    """What ``configure`` installed: change the format, level or server id later (``rony
    serve`` reads the settings file after the command line)."""

    def __init__(self, handler: logging.Handler, server_filter: ServerIdFilter, level: int) -> None:
        self.handler = handler
        self.filter = server_filter
        self._level = level  # the root logger's level before (remove puts it back)

    def apply(
        self, *, fmt: str | None = None, level: str | None = None, server_id: str | None = None
    ) -> None:
        if fmt is not None:
            self.handler.setFormatter(_formatter(fmt))
        if level is not None:
            logging.getLogger().setLevel(level)
        if server_id is not None:
            self.filter.server_id = server_id

    def remove(self) -> None:
        """Take the handler off again (``rony serve`` run in-process, as tests do)."""
        root = logging.getLogger()
        root.removeHandler(self.handler)
        root.setLevel(self._level)


def _formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    if fmt == "text":
        return TextFormatter()
    raise ValueError(f"log_format must be one of {', '.join(LOG_FORMATS)}, got {fmt!r}")


def configure(fmt: str = "text", level: str = "INFO", server_id: str = "") -> LogSetup:
    """One stderr handler on the root logger with rony's formatter and the server id filter
    (``rony serve``; a library user keeps their own logging set-up, and may use the
    formatters in it)."""
    handler = logging.StreamHandler(sys.stderr)
    server_filter = ServerIdFilter(server_id)
    handler.addFilter(server_filter)
    handler.setFormatter(_formatter(fmt))
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    return LogSetup(handler, server_filter, before)
