"""Render a ``FileModel`` as the Python source of ``<proto>_rony.py``.

The output is already in ``ruff format`` style and stays unchanged under it at line length 88
and 100 alike: every line fits in 88 columns, and every construct that does not fit on one line
is split one item per line with a magic trailing comma (which ruff keeps). Imports of the
``_pb2`` modules are fenced with ``# isort: split`` so the file sorts the same whether the
reader's configuration counts ``rony`` or the user's package as first- or third-party.

Runtime imports are rony.core and the ``_pb2`` modules only: a client-only program (rony-core +
rony-client) imports the generated module without rony.server; server and client types are
named under ``TYPE_CHECKING``. The node-to-node helpers (``tunnel_<service>_<method>``) take a
``rony.core.RemoteCaller`` (a RequestCtx or an Edge) for the same reason.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from ._model import FileModel, MessageRef, MethodModel, ServiceModel
from ._names import _literal, docstring_lines, tunnel_function
from ._version import GENERATOR_VERSION

__all__ = ["render"]

WIDTH = 88
"""Lines are kept within this width (ruff's and black's default), so the file is stable under
either default or the 100 columns of this repository."""

# Names the generated module binds itself (globals, and the parameters and locals of its
# functions); an imported message class so named gets an alias.
_RESERVED = frozenset(
    {
        "abc",
        "annotations",
        "Final",
        "TYPE_CHECKING",
        "Mapping",
        "RequestCtx",
        "RemoteCaller",
        "registry",
        "App",
        "Edge",
        "Handler",
        "AsyncClient",
        "Client",
        "_app_of",
        "str",
        "float",
        "bool",
        "getattr",
        "cast",
        # Parameters and locals of the generated functions and methods.
        "app",
        "impl",
        "pre_handlers",
        "target",
        "ctx",
        "req",
        "res",
        "self",
        "client",
        "header",
        "timeout",
        "caller",
        "replica_set",
        "server_id",
    }
)


def _natural(name: str) -> tuple[object, ...]:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name))


def _all_key(name: str) -> tuple[object, ...]:
    """Ruff's RUF022 "isort-style" order: SCREAMING_CASE, then CamelCase, then the rest."""
    group = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return (group, _natural(name))


def _member_key(name: str) -> tuple[object, ...]:
    """isort's default member order in ``from m import a, B, C``: constants, classes, others."""
    base = name.split(" as ", 1)[0]
    group = 0 if base.isupper() and len(base) > 1 else 1 if base[:1].isupper() else 2
    return (group, base.lower(), base)


def _call(indent: str, head: str, args: Iterable[str], tail: str = "") -> list[str]:
    """``head(args)tail`` on one line if it fits, else one argument per line (magic comma)."""
    items = list(args)
    one = f"{indent}{head}({', '.join(items)}){tail}"
    if len(one) <= WIDTH:
        return [one]
    inner = indent + "    "
    return [f"{indent}{head}(", *(f"{inner}{a}," for a in items), f"{indent}){tail}"]


def _docstring(indent: str, text: str) -> list[str]:
    lines = docstring_lines(text, WIDTH - len(indent) - 3)  # 3: the opening quotes
    if len(lines) == 1 and len(indent) + len(lines[0]) + 6 + lines[0].endswith('"') > WIDTH:
        # ruff format joins a one-line body with closing quotes on the next line into one
        # line, whatever its length: wrap it shorter, so it spans two lines.
        lines = docstring_lines(text, WIDTH - len(indent) - 6)
    if not lines:
        return []
    if len(lines) == 1:
        one = lines[0] + (" " if lines[0].endswith('"') else "")
        return [f'{indent}"""{one}"""']
    first, *rest = lines
    return [f'{indent}"""{first}', *(f"{indent}{ln}" if ln else "" for ln in rest), f'{indent}"""']


class _Imports:
    """Local names for the message classes: their bare top-level name unless that collides."""

    def __init__(self, model: FileModel) -> None:
        taken = set(_RESERVED)
        for m in model.messages:
            taken.add(f"C_{m.name}")
        for s in model.services:
            taken.update({f"{s.name}Base", f"register_{s.snake}"})
            taken.update({f"{s.name}Client", f"{s.name}SyncClient"})
            taken.update(f"C_{s.name}{m.name}" for m in s.methods)
            taken.update(f"handle_{m.py_name}" for m in s.methods)
            taken.update(tunnel_function(s.name, m.name) for m in s.methods)
        self._taken = taken
        self._local: dict[tuple[str, str], str] = {}  # (module, top-level class) -> local name
        self._bound: dict[str, tuple[str, str]] = {}

    def name(self, ref: MessageRef) -> str:
        """The expression naming ``ref``'s class in the generated module."""
        top, _, rest = ref.attr.partition(".")
        key = (ref.module, top)
        local = self._local.get(key)
        if local is None:
            local = top
            while local in self._taken or (local in self._bound and self._bound[local] != key):
                local = f"{local}_"
            self._local[key] = local
            self._bound[local] = key
        return f"{local}.{rest}" if rest else local

    def lines(self) -> list[str]:
        """One block per module, fenced by ``# isort: split``, in isort's own order: plain
        names share one statement, each ``X as Y`` gets its own (ruff's default
        ``combine-as-imports = false``), statements ordered by their first name."""
        by_module: dict[str, list[str]] = {}
        for (module, top), local in self._local.items():
            by_module.setdefault(module, []).append(top if top == local else f"{top} as {local}")
        out: list[str] = []
        for module in sorted(by_module):
            names = sorted(by_module[module], key=_member_key)
            plain = [n for n in names if " as " not in n]
            statements = [[n] for n in names if " as " in n] + ([plain] if plain else [])
            statements.sort(key=lambda group: _member_key(group[0]))
            out += ["", "# isort: split"]
            for group in statements:
                one = f"from {module} import {', '.join(group)}"
                if len(one) <= WIDTH:
                    out.append(one)
                else:
                    out += [f"from {module} import (", *(f"    {n}," for n in group), ")"]
        return out


def _header(model: FileModel) -> list[str]:
    return [
        f"# Generated by protoc-gen-rony {GENERATOR_VERSION}. DO NOT EDIT.",
        f"# source: {model.proto}",
        "# Edit the .proto file and run `rony gen` again instead.",
        '"""Rony glue for the .proto file named above: constructor ids, service base classes,',
        'handler registration, client stubs and tunnel helpers."""',
    ]


def _service_base(s: ServiceModel, imp: _Imports) -> list[str]:
    doc = s.doc + "\n\n" if s.doc else ""
    doc += f"The {s.name} service: implement each method, then ``register_{s.snake}(app, impl)``."
    abstract = bool(s.methods)
    out = [f"class {s.name}Base(abc.ABC):" if abstract else f"class {s.name}Base:"]
    out += _docstring("    ", doc)
    for m in s.methods:
        out.append("")
        out.append("    @abc.abstractmethod")
        sig = f"    async def {m.py_name}(self, ctx: RequestCtx, req: {imp.name(m.input)}) -> "
        sig += f"{imp.name(m.output)}:"
        if len(sig) > WIDTH:
            out += [
                f"    async def {m.py_name}(",
                "        self,",
                "        ctx: RequestCtx,",
                f"        req: {imp.name(m.input)},",
                f"    ) -> {imp.name(m.output)}:",
            ]
        else:
            out.append(sig)
        mdoc = m.doc or (
            f"Handle {s.name}.{m.name}: return the {m.output.name}, or raise a RonyError."
        )
        if m.internal:
            mdoc += "\n\nInternal (rony_internal): reachable only node-to-node, not from clients."
        out += _docstring("        ", mdoc)
    return out


def _handler(s: ServiceModel, m: MethodModel, imp: _Imports, known: set[str]) -> list[str]:
    out = [
        f"    async def handle_{m.py_name}(ctx: RequestCtx) -> None:",
        f"        req = ctx.message({imp.name(m.input)})",
        f"        res = await impl.{m.py_name}(ctx, req)",
        "        if not ctx.stopped:",
    ]
    # A method that returns None (a forgotten ``return``) or another message would fail inside
    # rony.core's push_message; say which method returned what instead.
    out += _call("            if not ", "isinstance", ["res", imp.name(m.output)], ":")
    article = "an" if m.output.name[:1].lower() in "aeiou" else "a"
    out += [
        "                raise TypeError(",
        f'                    f"{{type(impl).__qualname__}}.{m.py_name}() "',
        '                    f"returned {res!r:.80}; it must return "',
        f'                    "{article} {m.output.name} (or raise a RonyError)"',
        "                )",
    ]
    # The output's id is a constant here when this file defines it; else rony.core derives it.
    const = f"C_{m.output.name}" if m.output.full_name in known else None
    if const is not None:
        out += _call("            ", "ctx.push_message", ["res", f"constructor={const}"])
    else:
        out.append("            ctx.push_message(res)")
    out.append("")
    out += _call(
        "    ",
        "target.handle",
        [
            f"C_{s.name}{m.name}",
            "*pre_handlers",
            f"handle_{m.py_name}",
            f"request_class={imp.name(m.input)}",
            f"service={_literal(s.name)}",
            f"method={_literal(m.name)}",
            f"internal={m.internal}",
        ],
    )
    if m.rest is not None:
        r = m.rest
        args = [_literal(r.method), _literal(r.path), f"C_{s.name}{m.name}", imp.name(m.input)]
        for kw, values in (
            ("bind_path_param", r.bind_path_param),
            ("bind_query_param", r.bind_query_param),
        ):
            if values:
                items = ", ".join(_literal(v) for v in values)
                args.append(f"{kw}=({items},)" if len(values) == 1 else f"{kw}=({items})")
        if r.json_encode:
            args.append("json_encode=True")
        out += _call("    ", "target.rest", args)
    return out


def _register(s: ServiceModel, imp: _Imports, known: set[str]) -> list[str]:
    head = f"def register_{s.snake}(app: App | Edge, impl: {s.name}Base, *pre_handlers: Handler)"
    if len(head) + len(" -> None:") <= WIDTH:
        out = [head + " -> None:"]
    else:
        out = [
            f"def register_{s.snake}(",
            "    app: App | Edge,",
            f"    impl: {s.name}Base,",
            "    *pre_handlers: Handler,",
            ") -> None:",
        ]
    out += _docstring(
        "    ",
        f"Register the {s.name} service on ``app`` (an App, or the App of an Edge).\n\n"
        "One handler chain per method, ``pre_handlers`` first, and the REST routes of its "
        "``rony_rest`` options. A RonyError raised by ``impl`` becomes the Error reply.",
    )
    if not s.methods:
        return out
    out.append("    target = _app_of(app)")
    for m in s.methods:
        out.append("")
        out += _handler(s, m, imp, known)
    return out


def _client(s: ServiceModel, imp: _Imports, *, sync: bool) -> list[str]:
    cls = f"{s.name}SyncClient" if sync else f"{s.name}Client"
    kind = "Client" if sync else "AsyncClient"
    how = "" if sync else "await "
    out = [f"class {cls}:"]
    out += _docstring(
        "    ",
        f"{'Blocking' if sync else 'Async'} client of the {s.name} service over "
        f"``rony.client.{kind}``.\n\n"
        f"``{how}{cls}(client).method(req)`` returns the reply message; an Error reply "
        "raises its ``rony.core.errors`` class.",
    )
    out += [
        "",
        f"    def __init__(self, client: {kind}) -> None:",
        "        self._client = client",
    ]
    for m in s.methods:
        if m.internal:
            continue
        out.append("")
        out += [
            f"    {'def' if sync else 'async def'} {m.py_name}(",
            "        self,",
            f"        req: {imp.name(m.input)},",
            "        *,",
            "        header: Mapping[str, str] | None = None,",
            "        timeout: float | None = None," + ("" if sync else "  # noqa: ASYNC109"),
            f"    ) -> {imp.name(m.output)}:",
        ]
        out += _docstring("        ", m.doc or f"Call {s.name}.{m.name}.")
        out += _call(
            "        ",
            f"return {how}self._client.call",
            [
                f"C_{s.name}{m.name}",
                "req",
                imp.name(m.output),
                "header=header",
                "timeout=timeout",
            ],
        )
    return out


def _tunnel(s: ServiceModel, m: MethodModel, imp: _Imports) -> list[str]:
    """Go Rony's ``TunnelRequest<Service><Method>``: one typed node-to-node call, written for
    every method (internal ones most of all: only the tunnel reaches them)."""
    out = [
        f"async def {tunnel_function(s.name, m.name)}(",
        "    caller: RemoteCaller,",
        "    replica_set: int,",
        f"    req: {imp.name(m.input)},",
        "    *,",
        "    timeout: float | None = None,  # noqa: ASYNC109",
        "    server_id: str | None = None,",
        f") -> {imp.name(m.output)}:",
    ]
    doc = m.doc + "\n\n" if m.doc else ""
    doc += (
        f"Call {s.name}.{m.name} on an alive node of ``replica_set`` (or the node "
        "``server_id``) through the tunnel. ``caller``: the running RequestCtx, or an Edge. "
        "An Error reply raises its ``rony.core.errors`` class."
    )
    out += _docstring("    ", doc)
    out += _call(
        "    ",
        "return await caller.execute_remote",
        [
            "replica_set",
            f"C_{s.name}{m.name}",
            "req",
            imp.name(m.output),
            "timeout=timeout",
            "server_id=server_id",
        ],
    )
    return out


def render(model: FileModel) -> str:
    """The source of ``model.output``."""
    imp = _Imports(model)
    services = model.services
    with_methods = any(s.methods for s in services)
    clients = [s for s in services if not s.no_client]
    exports = [f"C_{m.name}" for m in model.messages]
    for s in services:
        exports += [f"C_{s.name}{m.name}" for m in s.methods]
        exports += [f"{s.name}Base", f"register_{s.snake}"]
        exports += [tunnel_function(s.name, m.name) for m in s.methods]
        if not s.no_client:
            exports += [f"{s.name}Client", f"{s.name}SyncClient"]

    body: list[str] = []
    # Constructor ids, as Go Rony's generated code (CRC-64/ISO of the bare names).
    if model.messages:
        body += ["", ""]
        for msg in model.messages:
            body.append(f"C_{msg.name}: Final = {msg.constructor}")
    method_ids = [(s, m) for s in services for m in s.methods]
    if method_ids:
        body.append("")
        for s, m in method_ids:
            body.append(f"C_{s.name}{m.name}: Final = {m.constructor}")
    if model.messages or method_ids:
        body.append("")
        for msg in model.messages:
            args = [f"C_{msg.name}", _literal(msg.name), imp.name(msg.ref)]
            body += _call("", "registry.register", args)
        for s, m in method_ids:
            args = [f"C_{s.name}{m.name}", _literal(s.name + m.name), imp.name(m.input)]
            body += _call("", "registry.register", args)
    if with_methods:
        body += [
            "",
            "",
            "def _app_of(target: App | Edge) -> App:",
            "    # An Edge carries its App; told apart by attribute, so that this module does not",
            "    # import rony.server at run time.",
            '    return cast("App", getattr(target, "app", target))',
        ]
    known = {m.ref.full_name for m in model.messages}
    for s in services:
        body += ["", ""]
        body += _service_base(s, imp)
        body += ["", ""]
        body += _register(s, imp, known)
        if not s.no_client:
            for sync in (False, True):
                body += ["", ""]
                body += _client(s, imp, sync=sync)
        for m in s.methods:
            body += ["", ""]
            body += _tunnel(s, m, imp)

    std = []
    if with_methods:
        std.append("import abc")
    if any(not m.internal for s in clients for m in s.methods):
        std.append("from collections.abc import Mapping")
    typing_names = ["TYPE_CHECKING"] if services else []
    if model.messages or method_ids:
        typing_names.append("Final")
    if with_methods:
        typing_names.append("cast")
    if typing_names:
        std.append(f"from typing import {', '.join(typing_names)}")
    core = ["RemoteCaller", "RequestCtx"] if with_methods else []
    if model.messages or method_ids:
        core.append("registry")
    blocks = [["from __future__ import annotations"], std]
    if core:
        blocks.append([f"from rony.core import {', '.join(core)}"])
    head = _header(model)
    for block in blocks:
        if block:
            head += ["", *block]
    head += imp.lines()
    if services:
        head += ["", "if TYPE_CHECKING:"]
        if clients:
            head.append("    from rony.client import AsyncClient, Client")
        head.append("    from rony.server import App, Edge, Handler")
    head += ["", "__all__ = ["]
    head += [f"    {_literal(name)}," for name in sorted(exports, key=_all_key)]
    head.append("]")
    if not exports:
        head[-2:] = ["__all__: list[str] = []"]
    return "\n".join(head + body) + "\n"
