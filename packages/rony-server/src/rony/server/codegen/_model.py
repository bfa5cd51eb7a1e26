"""Read a protoc ``CodeGeneratorRequest`` into a checked model of what to generate.

Everything that can be wrong with the input is found here, before a line is rendered, and
reported together as one ``GenerationError`` whose lines read ``file:line:col: cause``
(positions from the request's SourceCodeInfo): streaming RPCs, ``rony_rest`` routes whose
parameters bind to missing or non-scalar fields, two names with one constructor id (within the
request or against rony.core's built-ins), and generated names that would collide.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from google.protobuf import descriptor_pb2 as d
from google.protobuf.compiler import plugin_pb2
from google.protobuf.message import Message

from rony.core import message_id, method_id
from rony.core.pb import msg_pb2, options_pb2

from ._cli import CliModel, FieldInfo, build_cli
from ._names import module_of, snake_case, tunnel_function
from ._repo import RepoModel, build_repos

__all__ = [
    "FileModel",
    "GenerationError",
    "MessageModel",
    "MessageRef",
    "MethodModel",
    "RestModel",
    "ServiceModel",
    "build_model",
]

# Not OPTIONS: the gateway answers every OPTIONS request as a CORS preflight (rony.server's App
# refuses such a route too).
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
_PARAM = re.compile(r"^[:*][A-Za-z_][A-Za-z0-9_]*$")
_STATIC = re.compile(r"^[^:*]*$")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# Field kinds a REST path or query parameter can fill (every singular scalar; rony.server's App
# checks the same set at registration).
_BINDABLE = frozenset(
    {
        d.FieldDescriptorProto.TYPE_INT32,
        d.FieldDescriptorProto.TYPE_INT64,
        d.FieldDescriptorProto.TYPE_SINT32,
        d.FieldDescriptorProto.TYPE_SINT64,
        d.FieldDescriptorProto.TYPE_SFIXED32,
        d.FieldDescriptorProto.TYPE_SFIXED64,
        d.FieldDescriptorProto.TYPE_UINT32,
        d.FieldDescriptorProto.TYPE_UINT64,
        d.FieldDescriptorProto.TYPE_FIXED32,
        d.FieldDescriptorProto.TYPE_FIXED64,
        d.FieldDescriptorProto.TYPE_FLOAT,
        d.FieldDescriptorProto.TYPE_DOUBLE,
        d.FieldDescriptorProto.TYPE_BOOL,
        d.FieldDescriptorProto.TYPE_STRING,
        d.FieldDescriptorProto.TYPE_BYTES,
        d.FieldDescriptorProto.TYPE_ENUM,
    }
)
# Paths inside a FileDescriptorProto (descriptor.proto field numbers), for SourceCodeInfo.
_MESSAGE_TYPE, _SERVICE, _METHOD, _OPTIONS = 4, 6, 2, 4
_FIELD, _NESTED = 2, 3  # inside a DescriptorProto
_REST_EXT = options_pb2.RONY_REST_FIELD_NUMBER
# Files whose messages rony.core registers itself, or nobody registers.
_FOREIGN_PREFIXES = ("google/protobuf/", "rony/core/pb/")


class GenerationError(Exception):
    """The input cannot be generated. ``problems``: one ``file:line:col: cause`` per line."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True, slots=True)
class MessageRef:
    """Where a message class lives in Python: ``module`` (its ``_pb2``) and ``attr`` in it."""

    full_name: str  # "service.EchoRequest"
    module: str  # "examples.echo.sample_pb2"
    attr: str  # "EchoRequest", or "Outer.Inner" for a nested message
    fields: dict[str, d.FieldDescriptorProto] = field(compare=False, repr=False)

    @property
    def name(self) -> str:
        return self.attr.rsplit(".", 1)[-1]


@dataclass(frozen=True, slots=True)
class MessageModel:
    name: str
    constructor: int
    ref: MessageRef
    doc: str


@dataclass(frozen=True, slots=True)
class RestModel:
    method: str
    path: str
    bind_path_param: tuple[str, ...]
    bind_query_param: tuple[str, ...]
    json_encode: bool


@dataclass(frozen=True, slots=True)
class MethodModel:
    name: str  # "Echo"
    py_name: str  # "echo"
    constructor: int
    input: MessageRef
    output: MessageRef
    internal: bool
    rest: RestModel | None
    doc: str


@dataclass(frozen=True, slots=True)
class ServiceModel:
    name: str  # "Sample"
    snake: str  # "sample"
    doc: str
    no_client: bool
    methods: tuple[MethodModel, ...]
    cli: CliModel | None = None  # rony_cli (``_cli``)


@dataclass(frozen=True, slots=True)
class FileModel:
    proto: str  # "examples/echo/sample.proto", as protoc names it
    pb2_module: str  # "examples.echo.sample_pb2"
    output: str  # "examples/echo/sample_rony.py"
    messages: tuple[MessageModel, ...]
    services: tuple[ServiceModel, ...]
    repos: tuple[RepoModel, ...] = ()  # rony_model messages (``_repo``)


@dataclass(slots=True)
class _Id:
    """One constructor id claimed by a message or a method, for the clash check."""

    constructor: int
    name: str  # the registry name: "EchoRequest", "SampleEcho"
    what: str  # "message service.EchoRequest", "method service.Sample.Echo"
    where: str  # "file.proto:12:1"
    generated: bool


class _Locations:
    def __init__(self, f: d.FileDescriptorProto) -> None:
        self.file = f.name
        self._by_path = {tuple(loc.path): loc for loc in f.source_code_info.location}

    def where(self, *paths: tuple[int, ...]) -> str:
        """``file:line:col`` of the first path known (1-based), or just the file."""
        for path in paths:
            loc = self._by_path.get(path)
            if loc is not None and len(loc.span) >= 3:
                return f"{self.file}:{loc.span[0] + 1}:{loc.span[1] + 1}"
        return self.file

    def doc(self, path: tuple[int, ...]) -> str:
        loc = self._by_path.get(path)
        if loc is None:
            return ""
        text: str = loc.leading_comments or loc.trailing_comments
        return textwrap.dedent(text).strip("\n")


def _option(options: Message, number: int) -> object:
    """The value of the rony_* extension ``number`` set on ``options``, else None.

    Matched by field number, so options from Go Rony's own options.proto (same numbers) work too.
    """
    for fd, value in options.ListFields():
        if fd.is_extension and fd.number == number:
            return value
    return None


def _walk_messages(
    f: d.FileDescriptorProto,
) -> Iterator[tuple[str, str, d.DescriptorProto]]:
    """(full name, attribute path, descriptor) of every message of ``f``, nested ones too."""
    prefix = f"{f.package}." if f.package else ""
    stack = [(m.name, m) for m in f.message_type]
    while stack:
        attr, m = stack.pop()
        yield prefix + attr, attr, m
        stack.extend((f"{attr}.{n.name}", n) for n in m.nested_type)


class _Fields:
    """Every field's comment and position, and every enum's value names, of the request (the
    generated CLI's help and the check of its ``rony_default`` values)."""

    def __init__(self, request: plugin_pb2.CodeGeneratorRequest) -> None:
        self.info: dict[tuple[str, str], FieldInfo] = {}
        self.enums: dict[str, list[str]] = {}
        for f in request.proto_file:
            locs = _Locations(f)
            prefix = f"{f.package}." if f.package else ""
            for e in f.enum_type:
                self.enums[prefix + e.name] = [v.name for v in e.value]
            stack: list[tuple[str, tuple[int, ...], d.DescriptorProto]] = [
                (prefix + m.name, (_MESSAGE_TYPE, i), m) for i, m in enumerate(f.message_type)
            ]
            while stack:
                full, path, m = stack.pop()
                for i, fd in enumerate(m.field):
                    at = (*path, _FIELD, i)
                    self.info[(full, fd.name)] = FieldInfo(locs.doc(at), locs.where(at, path))
                for e in m.enum_type:
                    self.enums[f"{full}.{e.name}"] = [v.name for v in e.value]
                for i, n in enumerate(m.nested_type):
                    stack.append((f"{full}.{n.name}", (*path, _NESTED, i), n))


def _index(request: plugin_pb2.CodeGeneratorRequest) -> dict[str, MessageRef]:
    refs: dict[str, MessageRef] = {}
    for f in request.proto_file:
        module = module_of(f.name) + "_pb2"
        for full, attr, m in _walk_messages(f):
            refs[full] = MessageRef(full, module, attr, {fd.name: fd for fd in m.field})
    return refs


def _bindings(entries: Sequence[str], what: str, problems: list[str], where: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in entries:
        param, sep, fname = item.strip().partition("=")
        if not sep or not param.strip() or not fname.strip():
            problems.append(
                f"{where}: rony_rest {what} entry {item!r} must look like 'param=Field'"
            )
            continue
        out[param.strip()] = fname.strip()
    return out


def _check_field(ref: MessageRef, fname: str, why: str, problems: list[str], where: str) -> None:
    fd = ref.fields.get(fname)
    if fd is None:
        known = ", ".join(sorted(ref.fields)) or "none"
        problems.append(
            f"{where}: rony_rest {why} binds to field {fname!r}, which {ref.full_name} does not "
            f"have (its fields: {known})"
        )
    elif fd.label == d.FieldDescriptorProto.LABEL_REPEATED or fd.type not in _BINDABLE:
        problems.append(
            f"{where}: rony_rest {why} binds to field {ref.full_name}.{fname}, which is not a "
            "singular scalar (only numbers, bool, string, bytes and enums can be bound)"
        )


def _rest(opt: options_pb2.RestOpt, ref: MessageRef, problems: list[str], where: str) -> RestModel:
    verb = opt.method.strip().upper()
    if verb == "OPTIONS":
        problems.append(
            f"{where}: rony_rest method {opt.method!r}: the gateway answers every OPTIONS "
            "request as a CORS preflight, so this route would never run"
        )
    elif verb not in _HTTP_METHODS:
        problems.append(
            f"{where}: rony_rest method {opt.method!r} is not one of "
            f"{', '.join(sorted(m.lower() for m in _HTTP_METHODS))}"
        )
    path = "/" + opt.path.strip().strip("/")
    segments = [s for s in path.split("/") if s]
    params: list[str] = []
    for i, seg in enumerate(segments):
        if seg[:1] in (":", "*"):
            if not _PARAM.match(seg):
                problems.append(f"{where}: rony_rest path {opt.path!r}: bad parameter {seg!r}")
                continue
            if seg[0] == "*" and i != len(segments) - 1:
                problems.append(
                    f"{where}: rony_rest path {opt.path!r}: the wildcard {seg!r} must be the "
                    "last segment"
                )
            params.append(seg[1:])
        elif not _STATIC.match(seg):
            problems.append(f"{where}: rony_rest path {opt.path!r}: bad segment {seg!r}")
    renames = _bindings(opt.bind_path_param, "bind_path_param", problems, where)
    for param in renames:
        if param not in params:
            problems.append(
                f"{where}: rony_rest bind_path_param names {param!r}, which is not a parameter "
                f"of the path {path!r}"
            )
    # Go Rony silently left a path parameter unbound when no field matched (the value only
    # reached the connection's key/values); a typo then fails at run time, per request. We
    # refuse it here instead: every parameter binds to an existing scalar field.
    for param in params:
        fname = renames.get(param, param)
        _check_field(ref, fname, f"path parameter {param!r}", problems, where)
    queries = _bindings(opt.bind_query_param, "bind_query_param", problems, where)
    for param, fname in queries.items():
        _check_field(ref, fname, f"query parameter {param!r}", problems, where)
    return RestModel(
        method=opt.method.strip().lower(),
        path=path,
        bind_path_param=tuple(s.strip() for s in opt.bind_path_param),
        bind_query_param=tuple(s.strip() for s in opt.bind_query_param),
        json_encode=opt.json_encode,
    )


# Builtins the generated classes name in annotations; a method so named would shadow them.
_SHADOWING = frozenset({"str", "float"})


def _method_name(name: str) -> str:
    py = snake_case(name)
    return py + "_" if py in _SHADOWING else py


def _method(
    service: d.ServiceDescriptorProto,
    s_index: int,
    m_index: int,
    m: d.MethodDescriptorProto,
    refs: dict[str, MessageRef],
    locs: _Locations,
    problems: list[str],
) -> MethodModel | None:
    path = (_SERVICE, s_index, _METHOD, m_index)
    where = locs.where(path)
    if m.client_streaming or m.server_streaming:
        problems.append(
            f"{where}: rpc {service.name}.{m.name} streams; Rony methods take one request and "
            "return one response (push further messages with ctx.push_message)"
        )
        return None
    ok = True
    io: list[MessageRef] = []
    for type_name in (m.input_type, m.output_type):
        ref = refs.get(type_name.lstrip("."))
        if ref is None:  # protoc resolved it, so this means a malformed request
            problems.append(f"{where}: rpc {service.name}.{m.name}: unknown type {type_name}")
            ok = False
        else:
            io.append(ref)
    if not ok:
        return None
    rest = None
    internal = _option(m.options, options_pb2.RONY_INTERNAL_FIELD_NUMBER) is True
    rest_opt = _option(m.options, _REST_EXT)
    if isinstance(rest_opt, options_pb2.RestOpt):
        rest_where = locs.where((*path, _OPTIONS, _REST_EXT), (*path, _OPTIONS), path)
        rest = _rest(rest_opt, io[0], problems, rest_where)
        if internal:
            problems.append(
                f"{rest_where}: rpc {service.name}.{m.name} is rony_internal, which the gateway "
                "refuses, so its rony_rest route could never run; drop one of the two options"
            )
    return MethodModel(
        name=m.name,
        py_name=_method_name(m.name),
        constructor=method_id(service.name, m.name),
        input=io[0],
        output=io[1],
        internal=internal,
        rest=rest,
        doc=locs.doc(path),
    )


def _file(
    f: d.FileDescriptorProto,
    refs: dict[str, MessageRef],
    ids: list[_Id],
    problems: list[str],
    fields: _Fields,
) -> FileModel:
    locs = _Locations(f)
    module = module_of(f.name)
    bad = [part for part in module.split(".") if not _IDENT.match(part)]
    if bad:
        problems.append(
            f"{f.name}: the generated modules would be named {module}_pb2 / {module}_rony, which "
            f"Python cannot import ({bad[0]!r} is not an identifier); rename the file or folder"
        )
    messages: list[MessageModel] = []
    for i, m in enumerate(f.message_type):
        # As Go Rony, top-level messages get an id constant (nested ones are named by their own
        # bare name if ever sent, which rony.core computes on demand).
        full = f"{f.package}.{m.name}" if f.package else m.name
        cid = message_id(m.name)
        messages.append(MessageModel(m.name, cid, refs[full], locs.doc((_MESSAGE_TYPE, i))))
        where = locs.where((_MESSAGE_TYPE, i))
        ids.append(_Id(cid, m.name, f"message {full}", where, True))
    services: list[ServiceModel] = []
    routes: list[tuple[MethodModel, str, str]] = []  # (method, where, "Service.Method")
    prefix = f"{f.package}." if f.package else ""
    for si, s in enumerate(f.service):
        methods: list[MethodModel] = []
        py_names: dict[str, str] = {}
        for mi, rpc in enumerate(s.method):
            where = locs.where((_SERVICE, si, _METHOD, mi))
            what = f"method {prefix}{s.name}.{rpc.name}"
            ids.append(_Id(method_id(s.name, rpc.name), s.name + rpc.name, what, where, True))
            model = _method(s, si, mi, rpc, refs, locs, problems)
            if model is None:
                continue
            other = py_names.get(model.py_name)
            if other is not None:
                problems.append(
                    f"{where}: rpc {s.name}.{rpc.name} and rpc {s.name}.{other} both become the "
                    f"Python method {model.py_name!r}; rename one"
                )
            py_names[model.py_name] = rpc.name
            methods.append(model)
            if model.rest is not None:
                path = (_SERVICE, si, _METHOD, mi)
                rest_where = locs.where((*path, _OPTIONS, _REST_EXT), (*path, _OPTIONS), path)
                routes.append((model, rest_where, f"{s.name}.{rpc.name}"))
        cli = None
        cli_opt = _option(s.options, options_pb2.RONY_CLI_FIELD_NUMBER)
        if isinstance(cli_opt, Message):  # options_pb2.CliOpt, or Go Rony's own
            protocol = str(getattr(cli_opt, "protocol", ""))
            where = locs.where((_SERVICE, si))
            cli = build_cli(protocol, methods, fields.info, fields.enums, problems, where)
        services.append(
            ServiceModel(
                name=s.name,
                snake=snake_case(s.name),
                doc=locs.doc((_SERVICE, si)),
                no_client=_option(s.options, options_pb2.RONY_NO_CLIENT_FIELD_NUMBER) is True,
                methods=tuple(methods),
                cli=cli,
            )
        )
    _check_names(locs, services, problems)
    _check_routes(routes, problems)
    return FileModel(
        proto=f.name,
        pb2_module=module + "_pb2",
        output=module.replace(".", "/") + "_rony.py",
        messages=tuple(messages),
        services=tuple(services),
        repos=build_repos(f, refs, locs, problems),
    )


def _check_names(locs: _Locations, services: list[ServiceModel], problems: list[str]) -> None:
    """Two services must not generate the same Python name (``FooBar`` vs ``Foo_Bar``), nor two
    methods the same tunnel helper (``FooBar.Baz`` and ``Foo.BarBaz``: ``tunnel_foo_bar_baz``)."""
    owners: dict[str, str] = {}
    for si, s in enumerate(services):
        names = [f"{s.name}Base", f"register_{s.snake}", f"{s.name}Client", f"{s.name}SyncClient"]
        for name in names:
            if name in owners and owners[name] != s.name:
                where = locs.where((_SERVICE, si))
                problems.append(
                    f"{where}: services {owners[name]} and {s.name} both generate {name!r}"
                )
            owners[name] = s.name
    helpers: dict[str, str] = {}
    for si, s in enumerate(services):
        for m in s.methods:
            name, label = tunnel_function(s.name, m.name), f"{s.name}.{m.name}"
            first = helpers.setdefault(name, label)
            if first != label:
                where = locs.where((_SERVICE, si))
                problems.append(f"{where}: rpc {first} and rpc {label} both generate {name!r}")


def _check_routes(routes: list[tuple[MethodModel, str, str]], problems: list[str]) -> None:
    """REST routes of one file that rony.server's App refuses together (it raises when the
    generated ``register_*`` runs): one method+path twice (a ``:param`` or ``*wildcard`` matches
    whatever its name), or two names for the parameter at one place of the path."""
    shapes: dict[tuple[str, ...], str] = {}
    params: dict[tuple[str, ...], tuple[str, str]] = {}
    for m, where, label in routes:
        assert m.rest is not None
        verb = m.rest.method.upper()
        segments = [seg for seg in m.rest.path.split("/") if seg]
        shape = tuple(seg[0] if seg[:1] in (":", "*") else seg for seg in segments)
        first = shapes.setdefault((verb, *shape), label)
        if first != label:
            problems.append(
                f"{where}: rony_rest {verb} {m.rest.path} of rpc {label} is the same route as "
                f"that of rpc {first}"
            )
            continue
        for i, seg in enumerate(segments):
            if seg[:1] != ":":
                continue
            name, owner = params.setdefault((verb, *shape[:i]), (seg[1:], label))
            if name != seg[1:]:
                problems.append(
                    f"{where}: rony_rest path {m.rest.path!r}: parameter {seg} is :{name} at the "
                    f"same place in the route of rpc {owner}; use one name"
                )
                break


# rony.core's own wire messages (id -> full name). Taken from msg.proto itself rather than the
# process-wide registry, which in a long-lived process also holds every module imported so far.
_BUILTINS = {
    message_id(name): desc.full_name
    for name, desc in msg_pb2.DESCRIPTOR.message_types_by_name.items()
}


def _check_ids(ids: list[_Id], problems: list[str]) -> None:
    by_id: dict[int, _Id] = {}
    for item in ids:
        full = _BUILTINS.get(item.constructor)
        if full is not None:
            if item.what.split(" ", 1)[1] != full and item.generated:
                problems.append(
                    f"{item.where}: constructor id clash: {item.what} has id {item.constructor}, "
                    f"which rony.core's built-in {full} already uses; rename it"
                )
            continue
        first = by_id.get(item.constructor)
        if first is None:
            by_id[item.constructor] = item
        elif first.what != item.what and (first.generated or item.generated):
            # Reported where the file being generated is (a dependency may have no position).
            here, there = (item, first) if item.generated else (first, item)
            same = " (the same bare name)" if first.name == item.name else ""
            problems.append(
                f"{here.where}: constructor id clash: {here.what} and {there.what} "
                f"({there.where}) both have id {item.constructor}{same}; Rony ids are CRC-64 of "
                "bare names, so rename one"
            )


def build_model(request: plugin_pb2.CodeGeneratorRequest) -> list[FileModel]:
    """Check the request and return one model per file to generate, or raise GenerationError."""
    refs = _index(request)
    problems: list[str] = []
    ids: list[_Id] = []
    wanted = set(request.file_to_generate)
    fields = _Fields(request)
    models = [_file(f, refs, ids, problems, fields) for f in request.proto_file if f.name in wanted]
    for f in request.proto_file:
        # Ids that dependencies' own generated modules register, so a clash with them shows now.
        if f.name in wanted or f.name.startswith(_FOREIGN_PREFIXES):
            continue
        for m in f.message_type:
            full = f"{f.package}.{m.name}" if f.package else m.name
            ids.append(_Id(message_id(m.name), m.name, f"message {full}", f.name, False))
        prefix = f"{f.package}." if f.package else ""
        for s in f.service:
            for mt in s.method:
                what = f"method {prefix}{s.name}.{mt.name}"
                ids.append(_Id(method_id(s.name, mt.name), s.name + mt.name, what, f.name, False))
    _check_ids(ids, problems)
    if problems:
        raise GenerationError(problems)
    return models
