"""A .proto file printed back from its descriptor, without Rony's options and their import.

For peers that compile the schema with their own toolchain and have no use for (or no copy of)
``rony/core/pb/options.proto``: the result declares the same messages, enums, services, field
numbers, json names and other options, so protoc builds the same descriptors from it apart from
the Rony options (the export test checks exactly that). Leading comments are kept. Types are
written fully qualified (``.pkg.Msg``), which protoc resolves without any scoping question.

Options are read back through a descriptor pool built from the whole request, so custom options
of the user's own (an extension this process has never imported, which the request carries as
unknown bytes) are printed too, not silently dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from google.protobuf import descriptor_pb2 as d
from google.protobuf import descriptor_pool, message_factory, text_encoding, text_format
from google.protobuf.message import Message

from ._model import GenerationError

__all__ = ["RONY_OPTIONS_PROTO", "clean_proto", "options_pool"]

RONY_OPTIONS_PROTO = "rony/core/pb/options.proto"
_GO_OPTIONS_PROTO = "options.proto"  # Go Rony's own name for the same file

_F = d.FieldDescriptorProto
_TYPES = {
    _F.TYPE_DOUBLE: "double",
    _F.TYPE_FLOAT: "float",
    _F.TYPE_INT64: "int64",
    _F.TYPE_UINT64: "uint64",
    _F.TYPE_INT32: "int32",
    _F.TYPE_FIXED64: "fixed64",
    _F.TYPE_FIXED32: "fixed32",
    _F.TYPE_BOOL: "bool",
    _F.TYPE_STRING: "string",
    _F.TYPE_BYTES: "bytes",
    _F.TYPE_UINT32: "uint32",
    _F.TYPE_SFIXED32: "sfixed32",
    _F.TYPE_SFIXED64: "sfixed64",
    _F.TYPE_SINT32: "sint32",
    _F.TYPE_SINT64: "sint64",
}
_MAX_FIELD = 536870911
_MESSAGE_TYPE, _ENUM_TYPE, _SERVICE = 4, 5, 6
_M_FIELD, _M_NESTED, _M_ENUM = 2, 3, 4
_E_VALUE, _S_METHOD = 2, 2


def _is_rony(fd: object) -> bool:
    file = getattr(fd, "file", None)
    return getattr(file, "name", "") in (RONY_OPTIONS_PROTO, _GO_OPTIONS_PROTO)


def _value(fd: object, value: object) -> str:
    """An option value as .proto text (``ListFields`` gives enums as numbers)."""
    if isinstance(value, Message):
        return "{ " + text_format.MessageToString(value, as_one_line=True) + " }"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, bytes):
        return '"' + text_encoding.CEscape(value, as_utf8=False) + '"'
    enum = getattr(fd, "enum_type", None)
    if enum is not None and isinstance(value, int) and value in enum.values_by_number:
        return str(enum.values_by_number[value].name)
    return repr(value) if isinstance(value, float) else str(value)


def _quote(text: str) -> str:
    return '"' + text_encoding.CEscape(text.encode(), as_utf8=True) + '"'


def options_pool(files: Iterable[d.FileDescriptorProto]) -> descriptor_pool.DescriptorPool:
    """A pool of ``files`` (a whole request, dependencies first), to read their options with."""
    pool = descriptor_pool.DescriptorPool()
    for f in files:
        pool.Add(f)
    return pool


def _reparsed(options: Message, pool: descriptor_pool.DescriptorPool | None) -> Message:
    """``options`` parsed again with the extensions ``pool`` knows (unknown ones come alive)."""
    if pool is None:
        return options
    cls = message_factory.GetMessageClass(pool.FindMessageTypeByName(options.DESCRIPTOR.full_name))
    return cls.FromString(options.SerializeToString())


def _options(
    options: Message, pool: descriptor_pool.DescriptorPool | None = None
) -> list[tuple[str, str]]:
    """(name, value) of every option set, Rony's left out; repeated ones once per value."""
    out: list[tuple[str, str]] = []
    for fd, value in _reparsed(options, pool).ListFields():
        if _is_rony(fd):
            continue
        name = f"({fd.full_name})" if fd.is_extension else fd.name
        values = value if fd.is_repeated else [value]
        out.extend((name, _value(fd, v)) for v in values)
    return out


def _camel(name: str) -> str:
    """protoc's default json_name (``foo_bar`` -> ``fooBar``)."""
    return re.sub(r"_([a-z0-9])", lambda m: m.group(1).upper(), name).replace("_", "")


class _Printer:
    def __init__(
        self, f: d.FileDescriptorProto, pool: descriptor_pool.DescriptorPool | None
    ) -> None:
        self.f = f
        self.pool = pool
        self.lines: list[str] = []
        self.docs = {tuple(loc.path): loc.leading_comments for loc in f.source_code_info.location}
        self.proto3 = f.syntax == "proto3"
        self.scope = f".{f.package}" if f.package else ""

    def emit(self, depth: int, text: str) -> None:
        self.lines.append("  " * depth + text if text else "")

    def doc(self, depth: int, path: tuple[int, ...]) -> None:
        text = self.docs.get(path, "")
        for line in text.rstrip("\n").split("\n") if text.strip() else []:
            self.emit(depth, ("//" + line).rstrip())

    def options_block(self, depth: int, options: Message) -> None:
        for name, value in self.opts(options):
            self.emit(depth, f"option {name} = {value};")

    def opts(self, options: Message) -> list[tuple[str, str]]:
        return _options(options, self.pool)

    def file(self) -> str:
        f = self.f
        if f.syntax == "editions":
            self.emit(0, f'edition = "{d.Edition.Name(f.edition).removeprefix("EDITION_")}";')
        else:
            self.emit(0, f'syntax = "{f.syntax or "proto2"}";')
        if f.package:
            self.emit(0, f"package {f.package};")
        public, weak = set(f.public_dependency), set(f.weak_dependency)
        imports = [
            ("public " if i in public else "weak " if i in weak else "") + _quote(dep)
            for i, dep in enumerate(f.dependency)
            if dep not in (RONY_OPTIONS_PROTO, _GO_OPTIONS_PROTO)
        ]
        if imports:
            self.emit(0, "")
            for imp in imports:
                self.emit(0, f"import {imp};")
        if self.opts(f.options):
            self.emit(0, "")
            self.options_block(0, f.options)
        for i, e in enumerate(f.enum_type):
            self.emit(0, "")
            self.enum(0, e, (_ENUM_TYPE, i))
        for i, m in enumerate(f.message_type):
            self.emit(0, "")
            self.message(0, m, (_MESSAGE_TYPE, i), f"{self.scope}.{m.name}")
        if f.extension:
            self.emit(0, "")
            self.extensions(0, f.extension)
        for i, s in enumerate(f.service):
            self.emit(0, "")
            self.service(s, (_SERVICE, i))
        return "\n".join(self.lines) + "\n"

    def enum(self, depth: int, e: d.EnumDescriptorProto, path: tuple[int, ...]) -> None:
        self.doc(depth, path)
        self.emit(depth, f"enum {e.name} {{")
        self.options_block(depth + 1, e.options)
        for i, v in enumerate(e.value):
            self.doc(depth + 1, (*path, _E_VALUE, i))
            self.emit(depth + 1, f"{v.name} = {v.number}{self.brackets(self.opts(v.options))};")
        self.reserved(depth + 1, e.reserved_range, e.reserved_name, inclusive=True)
        self.emit(depth, "}")

    def reserved(
        self, depth: int, ranges: object, names: object, *, inclusive: bool = False
    ) -> None:
        spans = []
        for r in ranges:  # type: ignore[attr-defined]
            end = r.end if inclusive else r.end - 1
            spans.append(str(r.start) if end == r.start else f"{r.start} to {end}")
        if spans:
            self.emit(depth, f"reserved {', '.join(spans)};")
        if names:
            self.emit(depth, f"reserved {', '.join(_quote(n) for n in names)};")  # type: ignore[attr-defined]

    @staticmethod
    def brackets(options: list[tuple[str, str]]) -> str:
        return f" [{', '.join(f'{n} = {v}' for n, v in options)}]" if options else ""

    def message(self, depth: int, m: d.DescriptorProto, path: tuple[int, ...], full: str) -> None:
        self.doc(depth, path)
        self.emit(depth, f"message {m.name} {{")
        inner = depth + 1
        self.options_block(inner, m.options)
        # A map field's type is its entry, a nested message: matched by full name (``.pkg.M.
        # FooEntry``), as a field may also name another message whose bare name is the same.
        entries = {f"{full}.{n.name}": n for n in m.nested_type if n.options.map_entry}
        for i, e in enumerate(m.enum_type):
            self.enum(inner, e, (*path, _M_ENUM, i))
        # protoc lists nested messages and map entries in the order they are declared, so the
        # nested messages that precede a map field's entry are printed just before that field
        # and the others after the fields: the same descriptor again.
        nested = list(enumerate(m.nested_type))

        def nested_until(stop: str | None) -> None:
            while nested:
                i, n = nested.pop(0)
                if n.options.map_entry:
                    if n.name == stop:
                        return
                    continue
                self.message(inner, n, (*path, _M_NESTED, i), f"{full}.{n.name}")

        open_oneof: int | None = None
        for i, fd in enumerate(m.field):
            real_oneof = fd.HasField("oneof_index") and not fd.proto3_optional
            if open_oneof is not None and (not real_oneof or fd.oneof_index != open_oneof):
                self.emit(inner, "}")
                open_oneof = None
            if fd.type_name in entries and fd.label == _F.LABEL_REPEATED:
                nested_until(entries[fd.type_name].name)
            level = inner
            if real_oneof:
                if open_oneof is None:
                    decl = m.oneof_decl[fd.oneof_index]
                    self.emit(inner, f"oneof {decl.name} {{")
                    self.options_block(inner + 1, decl.options)
                    open_oneof = fd.oneof_index
                level = inner + 1
            self.doc(level, (*path, _M_FIELD, i))
            self.emit(level, self.field(fd, entries, in_oneof=real_oneof) + ";")
        if open_oneof is not None:
            self.emit(inner, "}")
        nested_until(None)
        for r in m.extension_range:
            end = "max" if r.end - 1 >= _MAX_FIELD else str(r.end - 1)
            span = str(r.start) if end == str(r.start) else f"{r.start} to {end}"
            self.emit(inner, f"extensions {span}{self.brackets(self.opts(r.options))};")
        self.reserved(inner, m.reserved_range, m.reserved_name)
        self.extensions(inner, m.extension)
        self.emit(depth, "}")

    def extensions(self, depth: int, fields: object) -> None:
        by_extendee: dict[str, list[d.FieldDescriptorProto]] = {}
        for fd in fields:  # type: ignore[attr-defined]
            by_extendee.setdefault(fd.extendee, []).append(fd)
        for extendee, group in by_extendee.items():
            self.emit(depth, f"extend {extendee} {{")
            for fd in group:
                self.emit(depth + 1, self.field(fd, {}, in_oneof=False) + ";")
            self.emit(depth, "}")

    def type_of(self, fd: d.FieldDescriptorProto) -> str:
        if fd.type == _F.TYPE_GROUP:
            raise GenerationError(
                [f"{self.f.name}: field {fd.name} is a group, which --export proto cannot print"]
            )
        return fd.type_name if fd.type_name else _TYPES[fd.type]

    def field(
        self, fd: d.FieldDescriptorProto, entries: dict[str, d.DescriptorProto], *, in_oneof: bool
    ) -> str:
        entry = entries.get(fd.type_name) if fd.type_name else None
        if entry is not None and fd.label == _F.LABEL_REPEATED:
            key, value = entry.field[0], entry.field[1]
            kind = f"map<{self.type_of(key)}, {self.type_of(value)}>"
            label = ""
        else:
            kind = self.type_of(fd)
            label = self.label(fd, in_oneof)
        extra = self.opts(fd.options)
        if fd.HasField("default_value"):
            default = fd.default_value
            if fd.type in (_F.TYPE_STRING, _F.TYPE_BYTES):
                default = '"' + default + '"' if fd.type == _F.TYPE_BYTES else _quote(default)
            extra.insert(0, ("default", default))
        if fd.HasField("json_name") and fd.json_name != _camel(fd.name) and not fd.extendee:
            extra.append(("json_name", _quote(fd.json_name)))
        return f"{label}{kind} {fd.name} = {fd.number}{self.brackets(extra)}"

    def label(self, fd: d.FieldDescriptorProto, in_oneof: bool) -> str:
        if fd.label == _F.LABEL_REPEATED:
            return "repeated "
        if in_oneof:
            return ""
        if fd.label == _F.LABEL_REQUIRED:
            return "required "
        if self.f.syntax == "editions":
            return ""
        if self.proto3:
            return "optional " if fd.proto3_optional else ""
        return "optional "

    def service(self, s: d.ServiceDescriptorProto, path: tuple[int, ...]) -> None:
        self.doc(0, path)
        self.emit(0, f"service {s.name} {{")
        self.options_block(1, s.options)
        for i, m in enumerate(s.method):
            self.doc(1, (*path, _S_METHOD, i))
            cin = "stream " if m.client_streaming else ""
            cout = "stream " if m.server_streaming else ""
            head = f"rpc {m.name} ({cin}{m.input_type}) returns ({cout}{m.output_type})"
            options = self.opts(m.options)
            if not options:
                self.emit(1, head + ";")
                continue
            self.emit(1, head + " {")
            for name, value in options:
                self.emit(2, f"option {name} = {value};")
            self.emit(1, "}")
        self.emit(0, "}")


def clean_proto(
    f: d.FileDescriptorProto, pool: descriptor_pool.DescriptorPool | None = None
) -> str:
    """``f`` as .proto source without Rony's options and its import of them. ``pool``
    (``options_pool`` of the request) lets options of extensions unknown here be printed."""
    return _Printer(f, pool).file()
