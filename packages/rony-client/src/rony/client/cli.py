"""The runtime of the command-line clients ``rony gen`` writes for ``rony_cli`` services.

A generated ``<proto>_cli.py`` only declares its services, methods and flags (with the help and
defaults of the proto's ``rony_help`` / ``rony_default`` options and comments) and calls
``main``; everything else lives here, once:

    python -m examples.echo.sample_cli --url ws://127.0.0.1:8080 sample echo --id 7 --random-text hi
    {"ReqID": "7", "RandomText": "hi"}

One subcommand per service, one per method below it (kebab-case, as Go Rony's cobra commands),
one flag per field of the request. A flag converts its text exactly as the field's kind wants:
integers in decimal within the kind's range, float/double, bool as ``--flag``/``--no-flag``,
string, bytes as the UTF-8 bytes of the text, enums by value name or number; repeated scalars
take the flag once per element; message, map and repeated message fields take protobuf JSON
(``--page '{"offset": 2}'``). A flag not given leaves its field unset (or at its
``rony_default``). The reply is printed as protobuf JSON on one line (what the gateway's REST
routes send); an Error reply prints ``code:items (description)`` on stderr and exits 1, as
does a failure to reach the node; bad flags exit 2 (argparse's usage error).

The URL picks the transport: ``ws://`` / ``wss://`` a WebSocket, ``http://`` / ``https://``
HTTP POST. Its default is the ``RONY_URL`` environment variable, else the generated module's
(from ``rony_cli``'s ``protocol``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from rony.client._sync import Client
from rony.client.errors import ClientError
from rony.core import message_to_json
from rony.core.errors import RonyError

__all__ = ["DEFAULT_TIMEOUT", "URL_ENV", "Flag", "Method", "Service", "main"]

URL_ENV = "RONY_URL"
"""The environment variable that overrides the generated default of ``--url``."""

DEFAULT_TIMEOUT = 10.0
"""Seconds one call may take (retries included) unless ``--timeout`` says otherwise."""

Help = str | Sequence[str]
"""Help text; a sequence is lines of one text (generated code wraps long help that way)."""


@dataclass(frozen=True, slots=True)
class Flag:
    """The flag (``--random-text``) of the request field ``field`` (``RandomText``)."""

    field: str
    flag: str
    help: Help = ""
    default: str | None = None  # rony_default, as text (checked by `rony gen`)


@dataclass(frozen=True, slots=True)
class Method:
    """One RPC: its command name, method id, request and reply classes, help and flags."""

    command: str
    constructor: int
    request: type[Message]
    response: type[Message]
    help: Help
    flags: tuple[Flag, ...]


@dataclass(frozen=True, slots=True)
class Service:
    """One ``rony_cli`` service: its command name, help and methods."""

    command: str
    help: Help
    methods: tuple[Method, ...]


def _text(help: Help) -> str:
    return help if isinstance(help, str) else " ".join(help)


_RANGES = {
    FieldDescriptor.TYPE_INT32: ("int32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: ("sint32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: ("sfixed32", -(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: ("int64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: ("sint64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: ("sfixed64", -(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: ("uint32", 0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: ("fixed32", 0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: ("uint64", 0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: ("fixed64", 0, 2**64 - 1),
}


_INT_TEXT = re.compile(r"[+-]?[0-9]+")


def _named(name: str, fn: Callable[[str], Any]) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        return fn(text)

    convert.__name__ = name  # argparse says "invalid <name> value: 'x'"
    return convert


def _converter(fd: FieldDescriptor) -> tuple[Callable[[str], Any], str]:
    """(text -> field value, kind name) for a scalar or enum field."""
    t = fd.type
    if t in _RANGES:
        name, lo, hi = _RANGES[t]

        def integer(text: str) -> int:
            # Plain ASCII decimal, as the gateway reads a REST parameter (int() would also take
            # "1_000" and non-ASCII digits). ValueError -> argparse's usage error.
            if not _INT_TEXT.fullmatch(text):
                raise ValueError(text)
            value = int(text, 10)
            if not lo <= value <= hi:
                raise ValueError(text)
            return value

        return _named(name, integer), name
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return _named("number", float), "float" if t == FieldDescriptor.TYPE_FLOAT else "double"
    if t == FieldDescriptor.TYPE_BOOL:

        def boolean(text: str) -> bool:
            low = text.strip().lower()
            if low not in ("true", "false", "1", "0"):
                raise ValueError(text)
            return low in ("true", "1")

        return _named("bool", boolean), "bool"
    if t == FieldDescriptor.TYPE_BYTES:
        return _named("bytes", str.encode), "bytes as UTF-8 text"
    if t == FieldDescriptor.TYPE_ENUM:
        enum = fd.enum_type
        assert enum is not None
        names = ", ".join(enum.values_by_name)

        def enum_value(text: str) -> int:
            found = enum.values_by_name.get(text)
            if found is not None:
                return int(found.number)
            if not _INT_TEXT.fullmatch(text):
                raise ValueError(text)
            number = int(text, 10)
            if enum.is_closed and number not in enum.values_by_number:
                raise ValueError(text)
            return number

        return _named(enum.name, enum_value), f"{enum.name}: {names}"
    return _named("string", str), "string"


def _is_json(fd: FieldDescriptor) -> bool:
    """Message, map and repeated message fields take protobuf JSON."""
    return fd.message_type is not None


def _add_flag(parser: argparse.ArgumentParser, fd: FieldDescriptor, flag: Flag) -> None:
    dest = "field:" + fd.name
    text = _text(flag.help)
    if _is_json(fd):
        mt = fd.message_type
        assert mt is not None
        if mt.GetOptions().map_entry:
            what = "a map, as a JSON object"
        else:
            what = f"{mt.name} as JSON" + (", a list" if fd.is_repeated else "")
        help = f"{text} ({what})" if text else f"({what})"
        parser.add_argument(flag.flag, dest=dest, metavar="JSON", help=help)
        return
    convert, kind = _converter(fd)
    if fd.is_repeated:
        help = f"{text} ({kind}; repeat for each element)" if text else f"({kind}; repeatable)"
        parser.add_argument(flag.flag, dest=dest, type=convert, action="append", help=help)
        return
    default = None if flag.default is None else convert(flag.default)
    suffix = f"{kind}; default {flag.default}" if flag.default is not None else kind
    help = f"{text} ({suffix})" if text else f"({suffix})"
    if fd.type == FieldDescriptor.TYPE_BOOL:
        parser.add_argument(
            flag.flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=help
        )
        return
    if fd.type in (FieldDescriptor.TYPE_STRING, FieldDescriptor.TYPE_BYTES):
        metavar = "TEXT"
    else:
        metavar = "VALUE" if fd.type == FieldDescriptor.TYPE_ENUM else "N"
    parser.add_argument(
        flag.flag, dest=dest, type=convert, default=default, help=help, metavar=metavar
    )


def _request(method: Method, values: dict[str, Any]) -> Message:
    """The request message from the parsed flags (``field:<name>`` keys); ValueError if bad."""
    req = method.request()
    desc: Any = method.request.DESCRIPTOR  # upb's and the pure descriptor types differ
    fields = desc.fields_by_name
    for key, value in values.items():
        if not key.startswith("field:") or value is None:
            continue
        fd = fields[key.removeprefix("field:")]
        if _is_json(fd):
            try:
                json_format.ParseDict({fd.json_name: json.loads(value)}, req)
            except (ValueError, json_format.ParseError) as exc:
                raise ValueError(f"--{fd.name}: {exc}") from None
        elif fd.is_repeated:
            getattr(req, fd.name).extend(value)
        else:
            setattr(req, fd.name, value)
    return req


def _parser(
    services: Sequence[Service], prog: str | None, default_url: str
) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Call a Rony service and print its reply as protobuf JSON."
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(URL_ENV) or default_url,
        help=f"the node: ws://, wss://, http:// or https:// (default: ${URL_ENV}, else "
        f"{default_url})",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help=f"for the whole call, retries included (default: {DEFAULT_TIMEOUT:g})",
    )
    parser.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a request header (repeatable)",
    )
    by_service = parser.add_subparsers(dest="service", metavar="SERVICE", required=True)
    for service in services:
        sp = by_service.add_parser(
            service.command, help=_text(service.help), description=_text(service.help)
        )
        by_method = sp.add_subparsers(dest="method", metavar="METHOD", required=True)
        for method in service.methods:
            mp = by_method.add_parser(
                method.command, help=_text(method.help), description=_text(method.help)
            )
            mp.set_defaults(call=method)
            desc: Any = method.request.DESCRIPTOR
            fields = desc.fields_by_name
            for flag in method.flags:
                _add_flag(mp, fields[flag.field], flag)
    return parser


def _transport(url: str) -> Literal["ws", "http"] | None:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("ws", "wss"):
        return "ws"
    if scheme in ("http", "https"):
        return "http"
    return None


def main(
    services: Sequence[Service],
    argv: Sequence[str] | None = None,
    *,
    prog: str | None = None,
    default_url: str = "ws://127.0.0.1:8080",
) -> int:
    """Parse ``argv`` (default: the command line), call the method, print the reply.

    Returns the exit status: 0 on a reply, 1 on an Error reply or a failed exchange (the
    message on stderr); argparse exits 2 itself on bad flags.
    """
    parser = _parser(services, prog, default_url)
    args = parser.parse_args(argv)
    transport = _transport(args.url)
    if transport is None:
        parser.error(f"--url {args.url!r}: use ws://, wss://, http:// or https://")
    header: dict[str, str] = {}
    for item in args.header:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--header {item!r}: use KEY=VALUE")
        header[key] = value
    method: Method = args.call
    try:
        req = _request(method, vars(args))
    except ValueError as exc:
        parser.error(str(exc))
    try:
        with Client(args.url, transport=transport) as client:
            reply = client.call(
                method.constructor, req, method.response, header=header, timeout=args.timeout
            )
    except RonyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ClientError as exc:
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(message_to_json(reply).decode())
    return 0
