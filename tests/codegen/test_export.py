"""``rony gen --export``: constructors.json, openapi.json and clean .proto files.

The OpenAPI document is checked by a validator library (openapi-spec-validator) and against what
a real node sends: the replies of the cgapi fixture (every kind of field) and of the echo example,
over a real socket, must conform to the response schemas (jsonschema, JSON Schema 2020-12 as
OpenAPI 3.1 uses it). The clean .proto files must compile with protoc into the same descriptors
as the originals, less Rony's options.
"""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import aiohttp
import jsonschema
import pytest
from google.protobuf import descriptor_pb2 as d
from google.protobuf import descriptor_pool, message_factory
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from google.protobuf.message import Message
from grpc_tools import protoc
from openapi_spec_validator import validate

from rony.core import message_id, method_id
from rony.core.pb import msg_pb2
from rony.server import cli as codegen_cli
from rony.server.codegen import GenerationError, generate
from rony.server.codegen._driver import include_path
from rony.server.codegen._export import export, render_exports
from rony.server.testing import serve
from tests.codegen._cgapi import cgapi_app
from tests.codegen._util import FIXTURES, ROOT, fixture_protos, request_for

EXAMPLES = ["examples/echo/sample.proto", "examples/redirect/sample.proto"]
# The fixtures, less the Go sample (it declares the same package and names as examples/echo).
FIXTURE_SET = [p for p in fixture_protos() if p != "sample.proto"]


def _load(files: dict[Path, bytes], name: str) -> Any:
    return json.loads(files[Path(name)])


# --- constructors ---------------------------------------------------------------------------


@pytest.mark.parametrize(("protos", "root"), [(EXAMPLES, ROOT), (FIXTURE_SET, FIXTURES)])
def test_constructor_ids_are_rony_cores(protos: list[str], root: Path, tmp_path: Path) -> None:
    request = request_for(protos, tmp_path, [root])
    doc = _load(render_exports(request, ["constructors"]), "constructors.json")
    by_name, by_value = doc["ConstructorsByName"], doc["ConstructorsByValue"]
    expected: dict[str, int] = {n: message_id(n) for n in msg_pb2.DESCRIPTOR.message_types_by_name}
    for f in request.proto_file:
        if f.name in request.file_to_generate:
            expected.update((m.name, message_id(m.name)) for m in f.message_type)
            for s in f.service:
                expected.update((s.name + m.name, method_id(s.name, m.name)) for m in s.method)
    assert by_name == {n: str(i) for n, i in expected.items()}  # strings: exact in JavaScript
    assert by_value == {str(i): n for n, i in expected.items()}
    assert by_name["Error"] == "3300063058275074048"  # rony.core's own, for clients


def test_constructor_id_modes(tmp_path: Path) -> None:
    request = request_for(EXAMPLES, tmp_path, [ROOT])
    exact = _load(render_exports(request, ["constructors"], ids="int"), "constructors.json")
    signed = _load(render_exports(request, ["constructors"], ids="int64"), "constructors.json")
    echo = method_id("Sample", "Echo")
    big = message_id("EchoResponse")
    assert big >= 2**63  # the case Go Rony's json_int64 wraps
    assert exact["ConstructorsByName"]["SampleEcho"] == echo
    assert exact["ConstructorsByName"]["EchoResponse"] == big
    assert exact["ConstructorsByValue"][str(big)] == "EchoResponse"
    assert signed["ConstructorsByName"]["EchoResponse"] == big - 2**64
    assert signed["ConstructorsByValue"][str(big - 2**64)] == "EchoResponse"
    assert all(-(2**63) <= v < 2**63 for v in signed["ConstructorsByName"].values())
    with pytest.raises(GenerationError, match="unknown id mode"):
        render_exports(request, ["constructors"], ids="hex")


def test_rony_gen_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "exports"
    protos = [str(ROOT / p) for p in EXAMPLES]
    args = ["gen", *protos, "-I", str(ROOT), "--export-out", str(out)]
    kinds = ["--export", "constructors", "--export", "openapi", "--export", "proto"]
    assert codegen_cli.main([*args, *kinds, "--ids", "int"]) == 0
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "constructors.json",
        "openapi.json",
        "proto/examples/echo/sample.proto",
        "proto/examples/redirect/sample.proto",
    ]
    doc = json.loads((out / "constructors.json").read_text())
    assert doc["ConstructorsByName"]["SampleEcho"] == method_id("Sample", "Echo")
    assert "wrote" in capsys.readouterr().out
    # --check applies to code, not exports; a bad proto writes nothing.
    assert codegen_cli.main([*args, *kinds, "--check"]) == 2
    bad = tmp_path / "bad.proto"
    bad.write_text('syntax = "proto3";\nmessage Bad { int64 x = 1 }\n')
    empty = tmp_path / "none"
    code = codegen_cli.main(["gen", str(bad), "-I", str(tmp_path), "--export", "openapi",
                             "--export-out", str(empty)])  # fmt: skip
    assert code == 1
    assert not empty.exists()
    assert "bad.proto:2" in capsys.readouterr().err


# --- OpenAPI --------------------------------------------------------------------------------


def _openapi(protos: list[str], root: Path, tmp: Path) -> dict[str, Any]:
    doc: dict[str, Any] = _load(
        render_exports(request_for(protos, tmp, [root]), ["openapi"]), "openapi.json"
    )
    validate(doc)  # raises on anything OpenAPI 3.1 does not allow
    return doc


@pytest.mark.parametrize(("protos", "root"), [(EXAMPLES, ROOT), (FIXTURE_SET, FIXTURES)])
def test_openapi_documents_are_valid(protos: list[str], root: Path, tmp_path: Path) -> None:
    doc = _openapi(protos, root, tmp_path)
    assert doc["openapi"] == "3.1.0"
    assert doc["paths"]


def test_openapi_schemas_say_what_protojson_writes(tmp_path: Path) -> None:
    doc = _openapi(["cgapi/api.proto"], FIXTURES, tmp_path)
    props = doc["components"]["schemas"]["cgapi.ApiAll"]["properties"]
    for name in ("i64", "u64", "s64", "f64"):
        assert props[name]["type"] == "string", name  # 64-bit ints: decimal strings
    assert props["i32"] == {"type": "integer", "format": "int32"}
    assert props["u32"]["type"] == "integer"
    assert props["blob"] == {"type": "string", "contentEncoding": "base64"}
    assert doc["components"]["schemas"]["cgapi.ApiColor"] == {
        "type": "string",
        "enum": ["API_COLOR_UNSPECIFIED", "API_COLOR_RED", "API_COLOR_BLUE"],
    }
    assert props["snakeName"] == {"type": "string"}  # json_name, as the gateway writes it
    assert "snake_name" not in props
    assert props["counts"]["additionalProperties"]["type"] == "string"  # map<string, int64>
    assert props["at"]["format"] == "date-time"
    mirror = doc["paths"]["/mirror/{u64}"]["post"]
    assert mirror["operationId"] == "cgapi.Api.Mirror"
    assert [p["name"] for p in mirror["parameters"]] == ["u64", "color"]
    assert "/secret" not in json.dumps(doc["paths"])  # rony_internal: no route, none listed


def test_openapi_refuses_one_route_in_two_protos(tmp_path: Path) -> None:
    for name in ("one", "two"):
        (tmp_path / f"{name}.proto").write_text(
            'syntax = "proto3";\n'
            f"package {name};\n"
            'import "rony/core/pb/options.proto";\n'
            f"message Q{name} {{ string x = 1; }}\n"
            f"service S{name} {{ rpc M (Q{name}) returns (Q{name}) {{\n"
            '  option (rony_rest) = { method: "get" path: "/same/:x" json_encode: true };\n'
            "} }\n"
        )
    request = request_for(["one.proto", "two.proto"], tmp_path, [tmp_path])
    clash = r"GET /same/:x of two\.Stwo\.M .* route of one\.Sone\.M"
    with pytest.raises(GenerationError, match=clash):
        render_exports(request, ["openapi"])


def _validator(doc: dict[str, Any], schema: dict[str, Any]) -> jsonschema.Draft202012Validator:
    # The schema's $refs point into the document: resolve them against a root holding both.
    root = {**schema, "components": doc["components"]}
    return jsonschema.Draft202012Validator(root, format_checker=jsonschema.FormatChecker())


def _conforms(doc: dict[str, Any], path: str, verb: str, status: int, body: bytes) -> None:
    responses = doc["paths"][path][verb]["responses"]
    spec = responses.get(str(status), responses["default"])
    schema = spec["content"]["application/json"]["schema"]
    _validator(doc, schema).validate(json.loads(body))


@pytest.fixture(scope="module")
def cgapi(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ModuleType, ModuleType]]:
    out = tmp_path_factory.mktemp("cgapi")
    generate([FIXTURES / "cgapi" / "api.proto"], out, [FIXTURES])
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("cgapi.api_rony"), importlib.import_module("cgapi.api_pb2")
    finally:
        sys.path.remove(str(out))


async def test_real_replies_conform_to_the_openapi_schema(
    cgapi: tuple[ModuleType, ModuleType], tmp_path: Path
) -> None:
    rony, _ = cgapi
    doc = _openapi(["cgapi/api.proto"], FIXTURES, tmp_path)
    full = {
        "i32": -7, "i64": "-9007199254740993", "u32": 4294967295, "s64": "-2",
        "f64": "18446744073709551615", "dbl": 1.5, "flt": "Infinity", "flag": True,
        "text": "t", "blob": "AAH/", "many": ["1", "-2"], "counts": {"a": "3"},
        "inner": {"v": "-4"}, "inners": [{"v": "5"}, {}], "at": "2026-01-02T03:04:05Z",
        "maybe": "6", "note": "", "snakeName": "s", "pickB": "7",
        "colors": ["API_COLOR_BLUE", "API_COLOR_RED"],
    }  # fmt: skip
    async with serve(cgapi_app(rony)) as edge, aiohttp.ClientSession() as http:
        for body, query in ((full, "color=API_COLOR_RED"), ({}, "color=2"), ({"pickA": "x"}, "")):
            url = f"{edge.url}/mirror/18446744073709551615?{query}"
            async with http.post(url, json=body) as r:
                assert r.status == 200
                raw = await r.read()
            _conforms(doc, "/mirror/{u64}", "post", 200, raw)
            reply = json.loads(raw)
            assert reply["u64"] == "18446744073709551615"  # a string: exact for JavaScript
            assert reply.get("color", "API_COLOR_BLUE") in ("API_COLOR_RED", "API_COLOR_BLUE")
        assert reply == {"u64": "18446744073709551615", "pickA": "x"}  # defaults left out
        async with http.get(f"{edge.url}/fail/NOPE") as r:
            assert r.status == 400
            _conforms(doc, "/fail/{text}", "get", r.status, await r.read())
        async with http.post(f"{edge.url}/mirror/-1") as r:  # not a uint64: E01 from binding
            assert r.status == 400
            _conforms(doc, "/mirror/{u64}", "post", r.status, await r.read())
    # And the check has teeth: a reply with a 64-bit int as a JSON number does not conform.
    with pytest.raises(jsonschema.ValidationError):
        _conforms(doc, "/mirror/{u64}", "post", 200, b'{"u64": 1}')
    with pytest.raises(jsonschema.ValidationError):
        _conforms(doc, "/mirror/{u64}", "post", 200, b'{"color": 1}')


async def test_echo_example_replies_conform(tmp_path: Path) -> None:
    from examples.echo.app import app

    doc = _openapi(EXAMPLES, ROOT, tmp_path)
    async with serve(app) as edge, aiohttp.ClientSession() as http:
        async with http.get(f"{edge.url}/echo/9007199254740993/hi") as r:
            assert r.status == 200
            raw = await r.read()
        _conforms(doc, "/echo/{ID}/{Random}", "get", 200, raw)
        assert json.loads(raw) == {"ReqID": "9007199254740993", "RandomText": "hi"}
        async with http.get(f"{edge.url}/echo/seven/hi") as r:
            assert r.status == 400
            _conforms(doc, "/echo/{ID}/{Random}", "get", 400, await r.read())


# --- clean .proto ---------------------------------------------------------------------------

TRICKY = """\
// A proto2 file with what a printer can get wrong.
syntax = "proto2";
package tricky.v1;

import "google/protobuf/descriptor.proto";
import "rony/core/pb/options.proto";

option java_package = "com.example.tricky";
option optimize_for = CODE_SIZE;

extend google.protobuf.FieldOptions {
  optional string note = 51234;
}

// Kind has an alias.
enum Kind {
  option allow_alias = true;
  KIND_A = 0;
  KIND_B = 1;
  KIND_ALSO_B = 1 [deprecated = true];
  reserved 5 to 9, 20;
  reserved "KIND_OLD";
}

message Thing {
  option (rony_model) = { local_datasource: "store" table: { part_key: "id" } };
  required int64 id = 1 [(rony_index) = true, (note) = "the \\"key\\"\\n"];
  optional string name = 2 [default = "a \\"b\\" \\u00e9", json_name = "label"];
  optional bytes raw = 3 [default = "\\000\\377x"];
  optional Kind kind = 4 [default = KIND_B, deprecated = true];
  optional double ratio = 5 [default = -inf];
  repeated sint32 packed = 6 [packed = true];
  map<string, Thing> children = 7;
  oneof pick {
    string left = 8;
    Inner right = 9;
  }
  optional FooEntry entry = 10;
  message Inner {
    optional fixed32 x = 1;
    enum Deep {
      DEEP_ZERO = 0;
    }
    optional Deep deep = 2;
  }
  extensions 100 to 199;
  extensions 1000 to max;
  reserved 11, 12 to 15;
  reserved "gone";
}

message FooEntry {
  optional string key = 1;
}

extend Thing {
  optional int32 extra = 100;
}

// Svc serves things.
service Svc {
  option deprecated = true;
  option (rony_cli) = {};
  // Get gets a thing.
  rpc Get (Thing) returns (Thing) {
    option idempotency_level = NO_SIDE_EFFECTS;
    option (rony_rest) = { method: "get" path: "/things/:id" };
  }
  rpc Put (Thing) returns (Thing);
}
"""


def _descriptor_set(
    protos: list[str], includes: list[Path], tmp: Path
) -> list[d.FileDescriptorProto]:
    out = tmp / "set.pb"
    args = ["protoc", *(f"-I{i}" for i in include_path(includes)), f"--descriptor_set_out={out}",
            "--include_imports", *protos]  # fmt: skip
    assert protoc.main(args) == 0, f"protoc failed on {protos} in {includes}"
    return list(FileDescriptorSet.FromString(out.read_bytes()).file)


def _strip_rony(f: d.FileDescriptorProto, pool: descriptor_pool.DescriptorPool) -> bytes:
    """``f`` without source info, Rony's options and its import of them, options re-read with
    every extension of ``pool`` (so two serialisations of one descriptor compare equal)."""
    f = d.FileDescriptorProto.FromString(f.SerializeToString())
    f.ClearField("source_code_info")
    deps = [x for x in f.dependency if x != "rony/core/pb/options.proto"]
    del f.dependency[:]
    f.dependency.extend(deps)

    def walk(msg: Message) -> None:
        for fd, value in msg.ListFields():
            if fd.message_type is None:
                continue
            items = list(value) if fd.is_repeated else [value]
            if fd.message_type.full_name.endswith("Options"):
                assert not fd.is_repeated
                cls = message_factory.GetMessageClass(
                    pool.FindMessageTypeByName(fd.message_type.full_name)
                )
                opts = cls.FromString(value.SerializeToString())
                for ext, _ in opts.ListFields():
                    if ext.file.name == "rony/core/pb/options.proto":
                        opts.ClearExtension(ext)
                value.Clear()
                if opts.ListFields():
                    value.MergeFromString(opts.SerializeToString(deterministic=True))
                else:
                    msg.ClearField(fd.name)
                continue
            for item in items:
                walk(item)

    walk(f)
    return f.SerializeToString(deterministic=True)


def _cases(tmp: Path) -> list[tuple[list[str], Path]]:
    (tmp / "src").mkdir()
    (tmp / "src" / "tricky.proto").write_text(TRICKY)
    return [(EXAMPLES, ROOT), (FIXTURE_SET, FIXTURES), (["tricky.proto"], tmp / "src")]


def test_clean_protos_compile_to_the_same_descriptors(tmp_path: Path) -> None:
    for i, (protos, root) in enumerate(_cases(tmp_path)):
        work = tmp_path / f"case{i}"
        work.mkdir()
        original = _descriptor_set(protos, [root], work)
        files = render_exports(request_for(protos, work, [root]), ["proto"])
        folder = work / "exported"
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
            text = data.decode()
            assert "rony_" not in text, f"{rel} keeps a Rony option"
            assert "options.proto" not in text
        # Every file but protobuf's own and Rony's options is exported, imports included.
        wanted = {f.name for f in original if not f.name.startswith("google/")} - {
            "rony/core/pb/options.proto"
        }
        assert {rel.relative_to("proto").as_posix() for rel in files} == wanted
        # protoc compiles the exported folder with no Rony folder on the include path at all.
        out = work / "again.pb"
        args = ["protoc", f"-I{folder / 'proto'}", f"-I{include_path()[-1]}",
                f"--descriptor_set_out={out}", "--include_imports", *protos]  # fmt: skip
        assert protoc.main(args) == 0, f"protoc failed on the exported {protos}"
        again = {f.name: f for f in FileDescriptorSet.FromString(out.read_bytes()).file}
        pool = descriptor_pool.DescriptorPool()
        for f in original:
            pool.Add(f)
        for f in original:
            if f.name in wanted:
                assert _strip_rony(again[f.name], pool) == _strip_rony(f, pool), f.name


def test_clean_proto_keeps_custom_options_and_comments(tmp_path: Path) -> None:
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "tricky.proto").write_text(TRICKY)
    files = render_exports(request_for(["tricky.proto"], tmp_path, [tmp_path / "src"]), ["proto"])
    text = files[Path("proto/tricky.proto")].decode()
    assert '(tricky.v1.note) = "the \\"key\\"\\n"' in text  # an extension unknown to this process
    assert "// Get gets a thing." in text
    assert 'json_name = "label"' in text


def test_export_function_writes_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = export([ROOT / p for p in EXAMPLES], out, [ROOT], ["constructors"])
    assert [p.name for p in result.written] == ["constructors.json"]
    again = export([ROOT / p for p in EXAMPLES], out, [ROOT], ["constructors"])
    assert again.written == []
    assert len(again.unchanged) == 1
    with pytest.raises(GenerationError, match="unknown export"):
        export([ROOT / p for p in EXAMPLES], tmp_path / "x", [ROOT], ["swagger"])
    assert not (tmp_path / "x").exists()
