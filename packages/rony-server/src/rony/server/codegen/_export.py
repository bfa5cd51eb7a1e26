"""``rony gen --export``: constructor tables, an OpenAPI document and clean .proto files.

Go Rony's ``rony export-proto`` ran its plugin three times (inventory §8.6). Here protoc runs
once, writing a descriptor set (``--descriptor_set_out`` with imports and source info) into a
temporary folder; the same checks as ``rony gen`` run on it (``build_model``, so a proto that
``rony gen`` refuses is not exported either), then every export is rendered in memory and
installed into the export folder all together, or not at all (``_driver._install``).

Exports (one set for all the protos of the run):

* ``constructors`` -> ``constructors.json``: ``{"ConstructorsByName": {name: id},
  "ConstructorsByValue": {id: name}}`` (Go Rony's ``json_str``/``json_int64`` layout, so a JS or
  Dart client written for its export reads ours) over the messages and methods of the protos and
  rony.core's own wire messages. ``ids``: ``"str"`` (default) writes ids as decimal strings (a
  64-bit id does not fit a JavaScript number); ``"int"`` as exact JSON integers (Python, Go,
  jq); ``"int64"`` as Go Rony's ``json_int64`` did, two's-complement signed (ids >= 2**63 become
  negative) for languages whose 64-bit integer is signed (Dart, Java). Keys of
  ``ConstructorsByValue`` are JSON strings in every mode. Names are the bare names ids are
  computed from (``EchoRequest``; ``SampleEcho`` for the method ``Sample.Echo``), so a reader
  can recompute every id.
* ``openapi`` -> ``openapi.json``: see ``_openapi``.
* ``proto`` -> ``proto/<path>.proto`` for each proto and each of its imports other than
  protobuf's well-known types and Rony's options (so the folder compiles on its own): see
  ``_clean_proto``.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.compiler import plugin_pb2
from google.protobuf.descriptor_pb2 import FileDescriptorSet

from rony.core import message_id, method_id
from rony.core.pb import msg_pb2

from ._clean_proto import RONY_OPTIONS_PROTO, clean_proto, options_pool
from ._driver import PROTOC_TIMEOUT, GenResult, _install, protoc
from ._model import FileModel, GenerationError, build_model
from ._openapi import openapi_document

__all__ = ["EXPORTS", "ID_MODES", "export", "render_exports"]

EXPORTS = ("constructors", "openapi", "proto")
"""What ``--export`` accepts."""

_OPTIONS_FILES = (RONY_OPTIONS_PROTO, "options.proto")  # ours, and Go Rony's name for it

ID_MODES = ("str", "int", "int64")
"""How ``constructors.json`` writes ids (``--ids``)."""


def _names_to_generate(
    protos: Sequence[str | os.PathLike[str]], includes: Sequence[str | os.PathLike[str]]
) -> list[str]:
    """Each proto's name as protoc gives it: its path below the first include folder holding it
    (protoc's own rule; a proto under none of them is protoc's error, reported as such)."""
    roots = [Path(i).resolve() for i in includes]
    names: list[str] = []
    for proto in protos:
        path = Path(proto).resolve()
        for root in roots:
            if path.is_relative_to(root):
                names.append(path.relative_to(root).as_posix())
                break
        else:
            names.append(Path(proto).as_posix())
    return names


def _descriptors(
    protos: Sequence[str | os.PathLike[str]],
    includes: Sequence[str | os.PathLike[str]],
    timeout: float,
) -> plugin_pb2.CodeGeneratorRequest:
    """The request protoc would send a plugin for ``protos``, from a descriptor set."""
    if not protos:
        raise GenerationError(["no .proto files given (and none found)"])
    with tempfile.TemporaryDirectory(prefix="rony-export-") as tmp:
        out = Path(tmp) / "descriptors.pb"
        protoc(
            protos,
            includes,
            [f"--descriptor_set_out={out}", "--include_imports", "--include_source_info"],
            timeout,
        )
        files = FileDescriptorSet.FromString(out.read_bytes()).file
    wanted = _names_to_generate(protos, includes)
    known = {f.name for f in files}
    missing = [n for n in wanted if n not in known]
    if missing:  # pragma: no cover - protoc names files as _names_to_generate does
        raise GenerationError([f"{n}: not in protoc's descriptor set" for n in missing])
    return plugin_pb2.CodeGeneratorRequest(file_to_generate=wanted, proto_file=files)


def _id_value(cid: int, ids: str) -> str | int:
    if ids == "str":
        return str(cid)
    if ids == "int64":
        return cid - (1 << 64) if cid >= 1 << 63 else cid
    return cid


def _constructors(models: Sequence[FileModel], ids: str) -> bytes:
    by_name: dict[str, int] = {
        name: message_id(name) for name in msg_pb2.DESCRIPTOR.message_types_by_name
    }
    for model in models:
        for msg in model.messages:
            by_name[msg.name] = msg.constructor
        for service in model.services:
            for m in service.methods:
                by_name[service.name + m.name] = method_id(service.name, m.name)
    ordered = dict(sorted(by_name.items()))
    by_value = sorted(ordered.items(), key=lambda kv: kv[1])
    doc = {
        "ConstructorsByName": {n: _id_value(i, ids) for n, i in ordered.items()},
        "ConstructorsByValue": {str(_id_value(i, ids)): n for n, i in by_value},
    }
    return (json.dumps(doc, indent=2) + "\n").encode()


def render_exports(
    request: plugin_pb2.CodeGeneratorRequest, kinds: Sequence[str], *, ids: str = "str"
) -> dict[Path, bytes]:
    """The export files (relative path -> content) for ``request``; GenerationError if bad."""
    problems = [f"unknown export {k!r}; choose from {', '.join(EXPORTS)}" for k in kinds
                if k not in EXPORTS]  # fmt: skip
    if ids not in ID_MODES:
        problems.append(f"unknown id mode {ids!r}; choose from {', '.join(ID_MODES)}")
    if problems:
        raise GenerationError(problems)
    models = build_model(request)
    files: dict[Path, bytes] = {}
    if "constructors" in kinds:
        files[Path("constructors.json")] = _constructors(models, ids)
    if "openapi" in kinds:
        doc = openapi_document(request, models)
        files[Path("openapi.json")] = (json.dumps(doc, indent=2) + "\n").encode()
    if "proto" in kinds:
        pool = options_pool(request.proto_file)
        for f in request.proto_file:
            if not f.name.startswith("google/protobuf/") and f.name not in _OPTIONS_FILES:
                files[Path("proto", f.name)] = clean_proto(f, pool).encode()
    return files


def export(
    protos: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    includes: Sequence[str | os.PathLike[str]] = (),
    kinds: Sequence[str] = EXPORTS,
    *,
    ids: str = "str",
    timeout: float = PROTOC_TIMEOUT,
) -> GenResult:
    """Write the ``kinds`` of export for ``protos`` into ``out`` (GenerationError: nothing)."""
    request = _descriptors(protos, includes or ["."], timeout)
    return _install(render_exports(request, kinds, ids=ids), Path(out))
