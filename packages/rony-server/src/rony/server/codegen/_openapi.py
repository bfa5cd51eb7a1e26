"""An OpenAPI 3.1 document of the ``rony_rest`` routes, with schemas of the JSON the gateway sends.

The gateway renders JSON with protobuf's JSON mapping (``rony.core.message_to_json``: names are
each field's ``json_name``, default values left out). The schemas say what that mapping writes,
which is what Go Rony's Swagger export got wrong (inventory §8.6, §1.7):

* 64-bit integers are decimal strings, 32-bit ones numbers; float and double are numbers or the
  strings ``NaN``, ``Infinity``, ``-Infinity``;
* bytes are base64 strings, enums their value names, maps objects, repeated fields arrays;
* well-known types have their own forms (Timestamp an RFC 3339 string, Duration ``"1.5s"``,
  wrappers their value, Struct an object, Value anything, FieldMask a string, Any an object
  with ``@type``).

No property is ``required`` (the mapping omits default values) and messages allow no other
properties. Path and query parameters are text the gateway converts (``rony.server.gateway.
_rest``): integers in decimal (64-bit ones as strings with a pattern, like the body), bool
``true``/``false``/``1``/``0``, bytes as their UTF-8 text (not base64), enums by name or number.
Tags and operation ids are full service names (``pkg.Service``, ``pkg.Service.Method``), unique
across the protos of one export; two protos declaring the same route is an error. A
``*wildcard`` becomes a ``{wildcard}`` parameter, though it matches the rest of the path, slashes
included (OpenAPI cannot say so; its description does). A route without
``json_encode`` takes and returns binary protobuf (``application/x-protobuf``). Every route
can answer a Rony ``Error`` (``{"Code":..., "Items":...}``) with the HTTP status of its code,
a redirect (307/308 with ``Location``) or 204 when the handler pushed no reply.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from google.protobuf import descriptor_pb2 as d
from google.protobuf.compiler import plugin_pb2

from ._model import FileModel, GenerationError, MethodModel, ServiceModel

__all__ = ["OPENAPI_VERSION", "openapi_document"]

OPENAPI_VERSION = "3.1.0"

_F = d.FieldDescriptorProto
_INT32 = {"type": "integer", "format": "int32"}
_UINT32 = {"type": "integer", "format": "int64", "minimum": 0, "maximum": 4294967295}
_INT64 = {"type": "string", "format": "int64", "pattern": r"^-?[0-9]+$"}
_UINT64 = {"type": "string", "format": "uint64", "pattern": r"^[0-9]+$"}
_NON_FINITE = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
_FLOAT = {"anyOf": [{"type": "number"}, _NON_FINITE]}
_BYTES = {"type": "string", "contentEncoding": "base64"}
_SCALARS: dict[int, dict[str, Any]] = {
    _F.TYPE_INT32: _INT32,
    _F.TYPE_SINT32: _INT32,
    _F.TYPE_SFIXED32: _INT32,
    _F.TYPE_UINT32: _UINT32,
    _F.TYPE_FIXED32: _UINT32,
    _F.TYPE_INT64: _INT64,
    _F.TYPE_SINT64: _INT64,
    _F.TYPE_SFIXED64: _INT64,
    _F.TYPE_UINT64: _UINT64,
    _F.TYPE_FIXED64: _UINT64,
    _F.TYPE_FLOAT: _FLOAT,
    _F.TYPE_DOUBLE: _FLOAT,
    _F.TYPE_BOOL: {"type": "boolean"},
    _F.TYPE_STRING: {"type": "string"},
    _F.TYPE_BYTES: _BYTES,
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]+(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Any": {"type": "object", "required": ["@type"]},
    "google.protobuf.DoubleValue": _FLOAT,
    "google.protobuf.FloatValue": _FLOAT,
    "google.protobuf.Int64Value": _INT64,
    "google.protobuf.UInt64Value": _UINT64,
    "google.protobuf.Int32Value": _INT32,
    "google.protobuf.UInt32Value": _UINT32,
    "google.protobuf.BoolValue": {"type": "boolean"},
    "google.protobuf.StringValue": {"type": "string"},
    "google.protobuf.BytesValue": _BYTES,
}
_NULL_VALUE = "google.protobuf.NullValue"
_ERROR = "rony.Error"
_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "Code": {"type": "string"},
        "Items": {"type": "string"},
        "Description": {"type": "string"},
    },
    "additionalProperties": False,
}
_PROTOBUF = "application/x-protobuf"
_BODY_METHODS = frozenset({"post", "put", "patch"})


class _Types:
    """Every message and enum of the request by full name, and the schemas referenced so far."""

    def __init__(self, request: plugin_pb2.CodeGeneratorRequest) -> None:
        self.messages: dict[str, d.DescriptorProto] = {}
        self.enums: dict[str, d.EnumDescriptorProto] = {}
        for f in request.proto_file:
            prefix = f"{f.package}." if f.package else ""
            self.enums.update((prefix + e.name, e) for e in f.enum_type)
            stack = [(prefix + m.name, m) for m in f.message_type]
            while stack:
                full, m = stack.pop()
                self.messages[full] = m
                self.enums.update((f"{full}.{e.name}", e) for e in m.enum_type)
                stack.extend((f"{full}.{n.name}", n) for n in m.nested_type)
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref(self, full: str) -> dict[str, Any]:
        """A schema of the message or enum ``full``, adding it to the components on first use."""
        if full in _WELL_KNOWN:
            return dict(_WELL_KNOWN[full])
        if full == _NULL_VALUE:
            return {"type": "null"}
        if full == _ERROR:  # rony.core's own, in no user's descriptor set
            self.schemas[full] = _ERROR_SCHEMA
        if full not in self.schemas:
            self.schemas[full] = {}  # placed first, so recursive messages terminate
            if full in self.enums:
                names = [v.name for v in self.enums[full].value]
                self.schemas[full] = {"type": "string", "enum": names}
            else:
                self.schemas[full] = self._message(self.messages[full])
        return {"$ref": f"#/components/schemas/{full}"}

    def field(self, fd: d.FieldDescriptorProto) -> dict[str, Any]:
        if fd.type in (_F.TYPE_MESSAGE, _F.TYPE_GROUP, _F.TYPE_ENUM):
            full = fd.type_name.lstrip(".")
            entry = self.messages.get(full)
            if entry is not None and entry.options.map_entry:
                value = {v.name: v for v in entry.field}["value"]
                return {"type": "object", "additionalProperties": self.field(value)}
            single = self.ref(full)
        else:
            single = dict(_SCALARS[fd.type])
        if fd.label == _F.LABEL_REPEATED:
            return {"type": "array", "items": single}
        return single

    def _message(self, m: d.DescriptorProto) -> dict[str, Any]:
        props = {fd.json_name or fd.name: self.field(fd) for fd in m.field}
        return {"type": "object", "properties": props, "additionalProperties": False}


def _path(path: str) -> tuple[str, list[str], str | None]:
    """``/items/:id/*rest`` -> (``/items/{id}/{rest}``, [id, rest], rest)."""
    parts: list[str] = []
    params: list[str] = []
    wildcard = None
    for seg in path.strip("/").split("/"):
        if seg[:1] in (":", "*"):
            params.append(seg[1:])
            parts.append("{" + seg[1:] + "}")
            if seg[0] == "*":
                wildcard = seg[1:]
        else:
            parts.append(seg)
    return "/" + "/".join(parts), params, wildcard


_PARAM_BOOL = {"type": "string", "enum": ["true", "false", "1", "0"]}


def _param_schema(types: _Types, fd: d.FieldDescriptorProto) -> dict[str, Any]:
    """The schema of a path or query parameter bound to ``fd`` (text the gateway converts)."""
    if fd.type == _F.TYPE_BYTES:
        return {"type": "string", "description": "UTF-8 text, taken as the bytes"}
    if fd.type == _F.TYPE_BOOL:
        return dict(_PARAM_BOOL)
    if fd.type == _F.TYPE_ENUM:
        return {"anyOf": [types.field(fd), {"type": "integer", "format": "int32"}]}
    if fd.type in (_F.TYPE_FLOAT, _F.TYPE_DOUBLE):
        return {"type": "number"}
    return types.field(fd)


def _content(types: _Types, full: str, json: bool) -> dict[str, Any]:
    if json:
        return {"application/json": {"schema": types.ref(full)}}
    return {_PROTOBUF: {"schema": {"type": "string", "contentMediaType": _PROTOBUF}}}


def _operation(
    types: _Types, service: ServiceModel, full_service: str, m: MethodModel
) -> dict[str, Any]:
    assert m.rest is not None
    fields = m.input.fields
    _, params, wildcard = _path(m.rest.path)
    renames = dict(b.split("=", 1) for b in m.rest.bind_path_param)
    parameters: list[dict[str, Any]] = []
    for p in params:
        fd = fields[renames.get(p, p)]
        param: dict[str, Any] = {
            "name": p,
            "in": "path",
            "required": True,
            "schema": _param_schema(types, fd),
        }
        if p == wildcard:
            param["description"] = f"the rest of the path, slashes included (field {fd.name})"
        else:
            param["description"] = f"field {fd.name}"
        parameters.append(param)
    for binding in m.rest.bind_query_param:
        q, fname = binding.split("=", 1)
        parameters.append(
            {
                "name": q,
                "in": "query",
                "required": False,
                "schema": _param_schema(types, fields[fname]),
                "description": f"field {fname}",
            }
        )
    json = m.rest.json_encode
    op: dict[str, Any] = {
        "operationId": f"{full_service}.{m.name}",
        "tags": [full_service],
        "responses": {
            "200": {
                "description": f"the reply ({m.output.full_name})",
                "content": _content(types, m.output.full_name, json),
            },
            "204": {"description": "the handler pushed no reply"},
            "307": {"description": "redirect for this request (Location)"},
            "308": {"description": "redirect for the session (Location)"},
            "default": {
                "description": "a Rony Error, with the HTTP status of its code",
                "content": {"application/json": {"schema": types.ref(_ERROR)}},
            },
        },
    }
    if m.doc:
        op["description"] = m.doc
    if parameters:
        op["parameters"] = parameters
    if m.rest.method in _BODY_METHODS:
        op["responses"]["413"] = {
            "description": "the body is over the node's max_message_size (a Rony Error)",
            "content": {"application/json": {"schema": types.ref(_ERROR)}},
        }
        op["requestBody"] = {
            "required": False,
            "description": f"{m.input.full_name}; path and query parameters override its fields",
            "content": _content(types, m.input.full_name, json),
        }
    return op


def openapi_document(
    request: plugin_pb2.CodeGeneratorRequest,
    models: Sequence[FileModel],
    *,
    title: str = "Rony REST API",
    version: str = "1",
) -> dict[str, Any]:
    """The OpenAPI 3.1 document (as a dict) of every REST route of ``models``."""
    types = _Types(request)
    packages = {f.name: f.package for f in request.proto_file}
    paths: dict[str, dict[str, Any]] = {}
    owners: dict[tuple[str, ...], str] = {}
    tags: list[dict[str, str]] = []
    problems: list[str] = []
    for model in models:
        package = packages.get(model.proto, "")
        for service in model.services:
            routed = [m for m in service.methods if m.rest is not None and not m.internal]
            if not routed:
                continue
            full = f"{package}.{service.name}" if package else service.name
            tag = {"name": full}
            if service.doc:
                tag["description"] = service.doc
            tags.append(tag)
            for m in routed:
                assert m.rest is not None
                path, _, _ = _path(m.rest.path)
                # One route per method and path shape (OpenAPI: "/a/{x}" and "/a/{y}" are the
                # same path); _model checks this within a file, here across the files.
                shape = tuple("{}" if s[:1] == "{" else s for s in path.split("/"))
                label = f"{full}.{m.name} ({model.proto})"
                first = owners.setdefault((m.rest.method, *shape), label)
                if first != label:
                    problems.append(
                        f"openapi: {m.rest.method.upper()} {m.rest.path} of {label} is also the "
                        f"route of {first}; one OpenAPI document cannot hold both"
                    )
                    continue
                paths.setdefault(path, {})[m.rest.method] = _operation(types, service, full, m)
    if problems:
        raise GenerationError(problems)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "tags": tags,
        "paths": dict(sorted(paths.items())),
        "components": {"schemas": dict(sorted(types.schemas.items()))},
    }
