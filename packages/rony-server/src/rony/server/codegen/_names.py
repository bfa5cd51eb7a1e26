"""Python names and docstrings for generated code: snake_case, keywords, safe docstrings."""

from __future__ import annotations

import keyword
import re
import textwrap

__all__ = ["docstring_lines", "module_of", "safe_identifier", "snake_case", "tunnel_function"]

_ACRONYM = re.compile(r"([A-Z]+)([A-Z][a-z])")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")


def _snake(name: str) -> str:
    s = _CAMEL.sub(r"\1_\2", _ACRONYM.sub(r"\1_\2", name)).lower()
    return re.sub(r"_+", "_", s)


def snake_case(name: str) -> str:
    """``GetHTTPResponse`` -> ``get_http_response``; ``Echo`` -> ``echo``; keywords get a ``_``."""
    return safe_identifier(_snake(name))


def tunnel_function(service: str, method: str) -> str:
    """The generated node-to-node helper of an RPC: ``Sample``, ``Echo`` -> ``tunnel_sample_echo``
    (Go Rony's ``TunnelRequestSampleEcho``). The prefix keeps it clear of keywords."""
    return f"tunnel_{_snake(service)}_{_snake(method)}"


def safe_identifier(name: str) -> str:
    """A Python keyword (``import``, ``async``) becomes ``import_``, as PEP 8 suggests."""
    return name + "_" if keyword.iskeyword(name) or keyword.issoftkeyword(name) else name


def module_of(proto_path: str) -> str:
    """The module protoc's Python generator names for ``proto_path``, minus the ``_pb2``.

    Same rule as protoc (``python/generator.cc``, ``ModuleName``): strip ``.proto``, ``-`` -> ``_``,
    ``/`` -> ``.``.
    """
    stem = proto_path.removesuffix(".protodevel").removesuffix(".proto")
    return stem.replace("-", "_").replace("/", ".")


def docstring_lines(text: str, width: int) -> list[str]:
    """The lines of a docstring body made from a proto comment, safe inside triple quotes.

    Trailing blanks go (ruff W291), over-long lines are wrapped to ``width`` (E501), a backslash
    or a run of quotes cannot end the literal early. Blank lines at both ends are dropped.
    """
    raw = textwrap.dedent(text.replace("\r\n", "\n").replace("\t", "    ")).strip("\n")
    out: list[str] = []
    for line in raw.split("\n"):
        line = line.rstrip()
        line = line.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
        if len(line) <= width:
            out.append(line)
            continue
        indent = line[: len(line) - len(line.lstrip())]
        out.extend(
            textwrap.wrap(
                line,
                width,
                subsequent_indent=indent,
                break_long_words=False,
                break_on_hyphens=False,
            )
            or [""]
        )
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def _literal(s: str) -> str:
    """A string literal as ruff format writes it (double quotes unless that needs escapes).
    Here, with the other name helpers, so that every renderer (``_render``, ``_repo_render``,
    ``_cli``) shares it without an import cycle through ``_model``."""
    body = s.replace("\\", "\\\\").replace("\n", "\\n")
    if '"' in s and "'" not in s:
        return "'" + body + "'"
    return '"' + body.replace('"', '\\"') + '"'
