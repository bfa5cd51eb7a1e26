"""Command-line clients (``rony_cli``): the model of their flags, and ``<proto>_cli.py``.

Go Rony's ``rony_cli`` generated cobra commands the user had to finish by hand (an interface
with one method per RPC). Here the module is complete: ``python -m pkg.svc_cli SERVICE METHOD
--flag ...`` calls the node and prints the reply; the work is done by ``rony.client.cli``, the
generated module only declares services, methods and flags. Per non-internal method of a service
with ``rony_cli``, every field of its request becomes a flag: ``--`` + the field's name in
kebab case (``RandomText`` -> ``--random-text``; the field's own name if two would collide),
with its help from ``rony_help`` or else the field's comment, and its default from
``rony_default`` (checked here against the field's kind, so a bad default is a ``rony gen``
error rather than a failure at run time). ``rony_cli``'s ``protocol`` (``ws``, the default, or
``http``; Go Rony parsed it and never used it) picks the default URL's scheme.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from google.protobuf import descriptor_pb2 as d

from ._names import _literal, _snake, docstring_lines
from ._version import GENERATOR_VERSION

if TYPE_CHECKING:
    from ._model import FileModel, MessageRef, MethodModel

__all__ = ["CliModel", "FlagModel", "build_cli", "cli_output", "render_cli"]

DEFAULT_PORT = 8080
"""The port of the generated default URL (that of ``rony serve``'s examples and README)."""

_F = d.FieldDescriptorProto
_INT_RANGES = {
    _F.TYPE_INT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SINT32: (-(2**31), 2**31 - 1),
    _F.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    _F.TYPE_INT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SINT64: (-(2**63), 2**63 - 1),
    _F.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    _F.TYPE_UINT32: (0, 2**32 - 1),
    _F.TYPE_FIXED32: (0, 2**32 - 1),
    _F.TYPE_UINT64: (0, 2**64 - 1),
    _F.TYPE_FIXED64: (0, 2**64 - 1),
}
_INT_TEXT = re.compile(r"\s*[+-]?[0-9]+\s*")
_PROTOCOLS = ("ws", "http")
_HELP_EXT, _DEFAULT_EXT = 50002, 50003  # FieldOptions.rony_help, rony_default


@dataclass(frozen=True, slots=True)
class FlagModel:
    field: str  # "RandomText"
    flag: str  # "--random-text"
    help: str
    default: str | None


@dataclass(frozen=True, slots=True)
class CliModel:
    protocol: str  # "ws" or "http"
    methods: tuple[tuple[MethodModel, tuple[FlagModel, ...]], ...]


@dataclass(frozen=True, slots=True)
class FieldInfo:
    """What the request's descriptor does not say about a field: its comment and position."""

    doc: str
    where: str


def kebab(name: str) -> str:
    """``InfoWithClientRedirect`` -> ``info-with-client-redirect``, ``snake_name`` ->
    ``snake-name``: a command or flag name."""
    return _snake(name).strip("_").replace("_", "-") or name


def _string_option(fd: d.FieldDescriptorProto, number: int) -> str | None:
    for ext, value in fd.options.ListFields():
        if ext.is_extension and ext.number == number and isinstance(value, str):
            return value
    return None


def _default_problem(
    fd: d.FieldDescriptorProto, text: str, enums: Mapping[str, Sequence[str]]
) -> str | None:
    """Why ``text`` is no default for ``fd``, or None if it is one."""
    t = fd.type
    if fd.label == _F.LABEL_REPEATED or t in (_F.TYPE_MESSAGE, _F.TYPE_GROUP):
        return "rony_default works on singular scalar and enum fields only"
    if t in _INT_RANGES:
        lo, hi = _INT_RANGES[t]
        if not _INT_TEXT.fullmatch(text) or not lo <= int(text) <= hi:
            return f"rony_default {text!r} is not a {_F.Type.Name(t)[5:].lower()}"
    elif t in (_F.TYPE_FLOAT, _F.TYPE_DOUBLE):
        try:
            float(text)
        except ValueError:
            return f"rony_default {text!r} is not a number"
    elif t == _F.TYPE_BOOL:
        if text.strip().lower() not in ("true", "false", "1", "0"):
            return f"rony_default {text!r} is not true, false, 1 or 0"
    elif t == _F.TYPE_ENUM:
        names = enums.get(fd.type_name.lstrip("."), ())
        if text not in names and not _INT_TEXT.fullmatch(text):
            return f"rony_default {text!r} is not a value of {fd.type_name.lstrip('.')}"
    return None


def _flags(
    ref: MessageRef,
    info: Mapping[tuple[str, str], FieldInfo],
    enums: Mapping[str, Sequence[str]],
    problems: list[str],
) -> tuple[FlagModel, ...]:
    taken = {"--help", "-h"}
    out: list[FlagModel] = []
    for fd in ref.fields.values():
        where = info.get((ref.full_name, fd.name), FieldInfo("", ref.full_name)).where
        flag = "--" + kebab(fd.name)
        if flag in taken:
            flag = "--" + fd.name
        if flag in taken:
            problems.append(
                f"{where}: rony_cli: field {ref.full_name}.{fd.name} would be the flag {flag} "
                "a second time; rename one of the fields"
            )
            continue
        taken.add(flag)
        default = _string_option(fd, _DEFAULT_EXT)
        if default is not None:
            why = _default_problem(fd, default, enums)
            if why is not None:
                problems.append(f"{where}: field {ref.full_name}.{fd.name}: {why}")
        help_ = _string_option(fd, _HELP_EXT)
        if help_ is None:
            help_ = info.get((ref.full_name, fd.name), FieldInfo("", "")).doc
        out.append(FlagModel(fd.name, flag, " ".join(help_.split()), default))
    return tuple(out)


def build_cli(
    protocol: str,
    methods: Sequence[MethodModel],
    info: Mapping[tuple[str, str], FieldInfo],
    enums: Mapping[str, Sequence[str]],
    problems: list[str],
    where: str,
) -> CliModel:
    """The CLI of a service with ``rony_cli = {protocol: ...}`` (``protocol`` may be empty)."""
    proto = protocol.strip().lower() or "ws"
    if proto not in _PROTOCOLS:
        problems.append(f"{where}: rony_cli protocol {protocol!r} is not ws or http")
    # Internal methods are refused by the gateway: no command (as Go Rony).
    picked = [(m, _flags(m.input, info, enums, problems)) for m in methods if not m.internal]
    return CliModel(proto, tuple(picked))


def cli_output(rony_output: str) -> str:
    """``pkg/svc_rony.py`` -> ``pkg/svc_cli.py``."""
    return rony_output.removesuffix("_rony.py") + "_cli.py"


# -- rendering ----------------------------------------------------------------------------

WIDTH = 88  # as _render: stable under ruff format at 88 and 100 columns


class _Text:
    """A string argument: one literal if it fits, else a parenthesised tuple of lines."""

    def __init__(self, text: str) -> None:
        self.text = text

    def flat(self) -> str:
        return _literal(self.text)

    def lines(self, indent: str, tail: str) -> list[str]:
        one = f"{indent}{self.flat()}{tail}"
        if len(one) <= WIDTH:
            return [one]
        inner = indent + "    "
        width = WIDTH - len(inner) - 3  # the quotes and the comma
        while True:  # narrower until every literal fits (escapes make a literal longer)
            parts = textwrap.wrap(self.text, width, break_on_hyphens=False)
            if all(len(inner) + len(_literal(p)) + 1 <= WIDTH for p in parts) or width < 20:
                break
            width -= 4
        return [f"{indent}(", *(f"{inner}{_literal(p)}," for p in parts), f"{indent}){tail}"]


@dataclass(slots=True)
class _Call:
    head: str  # "Flag", or "" for a tuple
    args: list[_Call | _Text | str]

    def flat(self) -> str:
        inner = ", ".join(a if isinstance(a, str) else a.flat() for a in self.args)
        if not self.head and len(self.args) == 1:
            inner += ","
        return f"{self.head}({inner})"

    def lines(self, indent: str, tail: str, prefix: str = "") -> list[str]:
        one = f"{indent}{prefix}{self.flat()}{tail}"
        if len(one) <= WIDTH or not self.args:
            return [one]
        out = [f"{indent}{prefix}{self.head}("]
        for a in self.args:
            if isinstance(a, str):
                out.append(f"{indent}    {a},")
            else:
                out += a.lines(indent + "    ", ",")
        out.append(f"{indent}){tail}")
        return out


def _first_paragraph(doc: str) -> str:
    return " ".join(doc.strip().split("\n\n", 1)[0].split())


def render_cli(model: FileModel) -> str | None:
    """The source of ``<proto>_cli.py``, or None when no service of the file has ``rony_cli``
    with a method to call."""
    services = [s for s in model.services if s.cli is not None and s.cli.methods]
    if not services:
        return None
    from ._render import _Imports, _member_key

    imp = _Imports(model)
    imp._taken |= {"Flag", "Method", "Service", "main", "run", "sys", "SERVICES", "argv"}
    rony_module = model.output.removesuffix(".py").replace("/", ".")
    module = cli_output(model.output).removesuffix(".py").replace("/", ".")
    constants: list[str] = []
    tree: list[_Call | _Text | str] = []
    for s in services:
        assert s.cli is not None
        methods: list[_Call | _Text | str] = []
        for m, flags in s.cli.methods:
            const = f"C_{s.name}{m.name}"
            constants.append(const)
            flag_calls: list[_Call | _Text | str] = []
            for f in flags:
                args: list[_Call | _Text | str] = [_literal(f.field), _literal(f.flag)]
                if f.help:
                    args.append(_Text(f.help))
                if f.default is not None:
                    args.append(f"default={_literal(f.default)}")
                flag_calls.append(_Call("Flag", args))
            help_ = _first_paragraph(m.doc) or f"Call {s.name}.{m.name}."
            methods.append(
                _Call(
                    "Method",
                    [
                        _literal(kebab(m.name)),
                        const,
                        imp.name(m.input),
                        imp.name(m.output),
                        _Text(help_),
                        _Call("", flag_calls),
                    ],
                )
            )
        help_ = _first_paragraph(s.doc) or f"The {s.name} service."
        tree.append(_Call("Service", [_literal(kebab(s.name)), _Text(help_), _Call("", methods)]))
    default_url = f"{services[0].cli.protocol}://127.0.0.1:{DEFAULT_PORT}"  # type: ignore[union-attr]

    head = [
        f"# Generated by protoc-gen-rony {GENERATOR_VERSION}. DO NOT EDIT.",
        f"# source: {model.proto}",
        "# Edit the .proto file and run `rony gen` again instead.",
        '"""Command-line client of the rony_cli services of the .proto file named above.',
        "",
        *docstring_lines(f"Run ``python -m {module} --help`` for its commands and flags.", WIDTH),
        '"""',
        "",
        "from __future__ import annotations",
        "",
        "import sys",
        "from collections.abc import Sequence",
        "",
        "from rony.client.cli import Flag, Method, Service, main",
    ]
    head += imp.lines()
    head += ["", "# isort: split"]
    constants.sort(key=_member_key)
    one = f"from {rony_module} import {', '.join(constants)}"
    if len(one) <= WIDTH:
        head.append(one)
    else:
        head += [f"from {rony_module} import (", *(f"    {c}," for c in constants), ")"]
    body = ["", '__all__ = ["SERVICES", "run"]', ""]
    body += _Call("", tree).lines("", "", "SERVICES = ")
    doc = docstring_lines(
        "Parse ``argv`` (default: the command line), call the method, print its reply; "
        "returns the exit status.",
        WIDTH - 7,
    )
    body += [
        "",
        "",
        "def run(argv: Sequence[str] | None = None) -> int:",
        f'    """{doc[0]}',
        *(f"    {ln}" for ln in doc[1:]),
        '    """',
        *_Call(
            "main",
            ["SERVICES", "argv", f"prog={_literal(f'python -m {module}')}",
             f"default_url={_literal(default_url)}"],
        ).lines("    ", "", "return "),
        "",
        "",
        'if __name__ == "__main__":',
        "    sys.exit(run())",
    ]  # fmt: skip
    return "\n".join(head + body) + "\n"
