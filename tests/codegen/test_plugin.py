"""The plugin in-process: ids, names, options, and every bad input it must refuse."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from google.protobuf.compiler import plugin_pb2

from rony.core import crc64_iso, message_id, method_id
from rony.server.codegen._model import build_model
from rony.server.codegen._names import docstring_lines, module_of, snake_case, tunnel_function
from rony.server.codegen.plugin import generate
from tests.codegen._util import request_for

HEADER = 'syntax = "proto3";\nimport "rony/core/pb/options.proto";\n'


def _gen(tmp_path: Path, files: dict[str, str]) -> plugin_pb2.CodeGeneratorResponse:
    for name, text in files.items():
        path = tmp_path / "protos" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return generate(request_for(sorted(files), tmp_path, includes=[tmp_path / "protos"]))


def _error(tmp_path: Path, files: dict[str, str]) -> str:
    response = _gen(tmp_path, files)
    assert response.error, "expected the plugin to refuse this input"
    assert not response.file
    return response.error


# --- ids --------------------------------------------------------------------------------------


def test_ids_of_go_sample_match_go_generated_code(tmp_path: Path) -> None:
    # The values in Go Rony's example/echo/rpc/sample.rony.go.
    [model] = build_model(request_for(["sample.proto"], tmp_path))
    ids = {f"C_{m.name}": m.constructor for m in model.messages}
    ids |= {f"C_{s.name}{m.name}": m.constructor for s in model.services for m in s.methods}
    assert ids == {
        "C_EchoRequest": 634453994073422796,
        "C_EchoResponse": 10208763112635265787,
        "C_SampleEcho": 5610266072904040111,
    }
    out, _cli = generate(request_for(["sample.proto"], tmp_path)).file  # _rony.py, _cli.py
    assert "C_SampleEcho: Final = 5610266072904040111\n" in out.content
    assert "C_EchoRequest: Final = 634453994073422796\n" in out.content
    assert "C_EchoResponse: Final = 10208763112635265787\n" in out.content


def test_every_emitted_id_is_the_crc_of_its_name(tmp_path: Path) -> None:
    [model] = build_model(request_for(["kitchen/sink.proto"], tmp_path))
    for m in model.messages:
        assert m.constructor == message_id(m.name) == crc64_iso(m.name)
    for s in model.services:
        for mt in s.methods:
            assert mt.constructor == method_id(s.name, mt.name) == crc64_iso(s.name + mt.name)


def test_options_are_read(tmp_path: Path) -> None:
    [model] = build_model(request_for(["kitchen/sink.proto"], tmp_path))
    store, admin, nothing = model.services
    methods = {m.name: m for m in store.methods}
    assert methods["Reset"].internal
    assert not methods["Import"].internal
    assert admin.no_client
    assert not store.no_client
    assert not nothing.methods
    rest = methods["List"].rest
    assert rest is not None
    assert (rest.method, rest.path) == ("get", "/items/:shelf/*rest")
    assert rest.bind_path_param == ("rest=prefix",)
    assert rest.bind_query_param == ("offset=offset", "limit=limit")
    assert methods["Import"].py_name == "import_"
    assert methods["GetHTTPStatus"].py_name == "get_http_status"
    assert methods["List"].output.attr == "ListRequest.Result"
    assert store.doc.startswith('Store keeps "items" in a C:\\shelf\\')


def test_internal_methods_get_no_client_stub_and_no_client_services_none(tmp_path: Path) -> None:
    out, _cli = generate(request_for(["kitchen/sink.proto"], tmp_path)).file  # _rony, _cli
    client = out.content[
        out.content.index("class StoreClient") : out.content.index("class StoreSync")
    ]
    assert "def reset" not in client
    assert "def import_" in client
    assert "class AdminClient" not in out.content
    assert "class AdminBase" in out.content
    assert "internal=True" in out.content


def test_every_method_gets_a_tunnel_helper_internal_and_no_client_ones_too(
    tmp_path: Path,
) -> None:
    out, _cli = generate(request_for(["kitchen/sink.proto"], tmp_path)).file  # _rony, _cli
    helpers = set(re.findall(r"^async def (tunnel_\w+)\(", out.content, re.M))
    assert helpers == {
        "tunnel_store_get_http_status",
        "tunnel_store_import",
        "tunnel_store_list",
        "tunnel_store_reset",  # internal: the tunnel is its only way in
        "tunnel_store_check",
        "tunnel_store_page_of",
        "tunnel_admin_drop",  # rony_no_client drops client stubs, not node-to-node calls
    }
    reset = out.content[out.content.index("async def tunnel_store_reset(") :]
    reset = reset[: reset.index("\n\n\n")]
    assert "caller: RemoteCaller," in reset
    assert ") -> Empty:" in reset
    call = "return await caller.execute_remote(\n        replica_set,\n        C_StoreReset,"
    assert call in reset


def test_runtime_imports_are_rony_core_and_pb2_only(tmp_path: Path) -> None:
    out, _cli = generate(request_for(["kitchen/sink.proto"], tmp_path)).file  # _rony, _cli
    top_level, _, _ = out.content.partition("if TYPE_CHECKING:")
    imported = set(re.findall(r"^(?:from|import) ([\w.]+)", top_level, re.M))
    assert imported == {
        "__future__",
        "abc",
        "collections.abc",
        "typing",
        "rony.core",
        "google.protobuf.empty_pb2",
        "kitchen.common_pb2",
        "kitchen.sink_pb2",
    }


# --- names --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "snake"),
    [
        ("Echo", "echo"),
        ("GetNodes", "get_nodes"),
        ("GetHTTPStatus", "get_http_status"),
        ("getNodes", "get_nodes"),
        ("get_nodes", "get_nodes"),
        ("Echo2Times", "echo2_times"),
        ("Import", "import_"),
        ("Async", "async_"),
        ("Match", "match_"),
        ("HTTP", "http"),
    ],
)
def test_snake_case(name: str, snake: str) -> None:
    assert snake_case(name) == snake


@pytest.mark.parametrize(
    ("service", "method", "name"),
    [
        ("Sample", "Echo", "tunnel_sample_echo"),
        ("Store", "GetHTTPStatus", "tunnel_store_get_http_status"),
        ("Import", "Async", "tunnel_import_async"),  # no keyword escape behind a prefix
    ],
)
def test_tunnel_function(service: str, method: str, name: str) -> None:
    assert tunnel_function(service, method) == name


def test_module_of_follows_protoc() -> None:
    assert module_of("a/b-c/d.proto") == "a.b_c.d"
    assert module_of("sample.proto") == "sample"


def test_docstring_lines_escape_and_wrap() -> None:
    lines = docstring_lines('ends with a backslash \\ and """quotes"""  ', 40)
    assert "\\\\" in lines[0]
    assert '"""' not in "".join(lines)
    long = docstring_lines("word " * 30, 40)
    assert len(long) > 1
    assert all(len(x) <= 40 for x in long)
    assert docstring_lines("\n\n  \n", 40) == []


# --- bad input ------------------------------------------------------------------------------------

REST_CASES = {
    "missing path field": (
        'path: "/x/:nope"',
        "bad.proto:7:5: rony_rest path parameter 'nope' binds to field 'nope', which bad.Req "
        "does not have (its fields: id, tags)",
    ),
    "renamed to a missing field": (
        'path: "/x/:id" bind_path_param: "id=Ident"',
        "path parameter 'id' binds to field 'Ident', which bad.Req does not have",
    ),
    "query param to a missing field": (
        'path: "/x" bind_query_param: "q=query"',
        "query parameter 'q' binds to field 'query', which bad.Req does not have",
    ),
    "repeated field": (
        'path: "/x/:tags"',
        "field bad.Req.tags, which is not a singular scalar",
    ),
    "rename of an unknown parameter": (
        'path: "/x/:id" bind_path_param: "other=id"',
        "bind_path_param names 'other', which is not a parameter of the path '/x/:id'",
    ),
    "wildcard not last": (
        'path: "/x/*rest/:id"',
        "the wildcard '*rest' must be the last segment",
    ),
    "bad binding syntax": (
        'path: "/x" bind_query_param: "id"',
        "bind_query_param entry 'id' must look like 'param=Field'",
    ),
}


@pytest.mark.parametrize("case", sorted(REST_CASES))
def test_bad_rest_options_name_file_line_and_cause(case: str, tmp_path: Path) -> None:
    option, expected = REST_CASES[case]
    proto = (
        HEADER + "package bad;\n\nservice Svc {\n  rpc Get (Req) returns (Req) {\n"
        f'    option (rony_rest) = {{ method: "get" {option} }};\n  }}\n}}\n\n'
        "message Req { int64 id = 1; repeated string tags = 2; }\n"
    )
    error = _error(tmp_path, {"bad.proto": proto})
    assert error.startswith("bad.proto:7:5: ")
    assert expected in error


def test_bad_rest_method(tmp_path: Path) -> None:
    proto = (
        HEADER + "package bad;\nservice Svc {\n  rpc Get (Req) returns (Req) {\n"
        '    option (rony_rest) = { method: "fetch" path: "/x" };\n  }\n}\n'
        "message Req { int64 id = 1; }\n"
    )
    assert "bad.proto:6:5: rony_rest method 'fetch' is not one of delete, get," in _error(
        tmp_path, {"bad.proto": proto}
    )


def test_options_rest_method_is_refused(tmp_path: Path) -> None:
    # The gateway answers every OPTIONS request as a CORS preflight: the route would never run.
    proto = (
        HEADER + "package bad;\nservice Svc {\n  rpc Get (Req) returns (Req) {\n"
        '    option (rony_rest) = { method: "options" path: "/x" };\n  }\n}\n'
        "message Req { int64 id = 1; }\n"
    )
    assert "bad.proto:6:5: rony_rest method 'options': the gateway answers" in _error(
        tmp_path, {"bad.proto": proto}
    )


def test_rest_routes_that_clash_are_refused(tmp_path: Path) -> None:
    # rony.server's App refuses these together: a same route for two rpcs (whatever the
    # parameter names), and two names for the parameter at one place.
    def rpc(name: str, method: str, path: str) -> str:
        return (
            f"  rpc {name} (Req) returns (Req) {{\n"
            f'    option (rony_rest) = {{ method: "{method}" path: "{path}" }};\n  }}\n'
        )

    proto = (
        HEADER
        + "package bad;\nservice Svc {\n"
        + rpc("A", "get", "/x/:id")
        + rpc("B", "GET", "/x/:other")
        + rpc("C", "get", "/x/:ident/more")
        + rpc("D", "post", "/x/:other")
        + rpc("E", "get", "/w/*rest")
        + "}\nservice Two {\n"
        + rpc("F", "get", "/w/*all")
        + "}\nmessage Req {\n  int64 id = 1; int64 other = 2; int64 ident = 3;\n"
        + "  string rest = 4; string all = 5;\n}\n"
    )
    error = _error(tmp_path, {"bad.proto": proto})
    assert error.splitlines() == [
        "bad.proto:9:5: rony_rest GET /x/:other of rpc Svc.B is the same route as that of rpc "
        "Svc.A",
        "bad.proto:12:5: rony_rest path '/x/:ident/more': parameter :ident is :id at the same "
        "place in the route of rpc Svc.A; use one name",
        "bad.proto:23:5: rony_rest GET /w/*all of rpc Two.F is the same route as that of rpc Svc.E",
    ]


def test_rest_route_of_an_internal_method_is_refused(tmp_path: Path) -> None:
    # The gateway refuses internal methods, so the route would always answer E01 HANDLER.
    proto = (
        HEADER + "package bad;\nservice Svc {\n  rpc Get (Req) returns (Req) {\n"
        "    option (rony_internal) = true;\n"
        '    option (rony_rest) = { method: "get" path: "/x" };\n  }\n}\n'
        "message Req { int64 id = 1; }\n"
    )
    assert "bad.proto:7:5: rpc Svc.Get is rony_internal, which the gateway refuses" in _error(
        tmp_path, {"bad.proto": proto}
    )


def test_streaming_rpc_is_refused(tmp_path: Path) -> None:
    proto = (
        HEADER + "package bad;\nservice Svc {\n  rpc Watch (Req) returns (stream Req);\n}\n"
        "message Req { int64 id = 1; }\n"
    )
    error = _error(tmp_path, {"bad.proto": proto})
    assert error.startswith("bad.proto:5:3: rpc Svc.Watch streams;")


def test_same_bare_name_in_two_packages_clashes(tmp_path: Path) -> None:
    a = 'syntax = "proto3";\npackage a;\n\nmessage Thing { int64 id = 1; }\n'
    b = 'syntax = "proto3";\npackage b;\nmessage Other {}\nmessage Thing { string s = 1; }\n'
    error = _error(tmp_path, {"a.proto": a, "b.proto": b})
    assert "constructor id clash: message b.Thing and message a.Thing (a.proto:4:1)" in error
    assert error.startswith("b.proto:4:1: ")
    assert "(the same bare name)" in error


def test_crc_collision_of_different_names_clashes(tmp_path: Path) -> None:
    # CRC-64/ISO is linear: these two names differ by a multiple of the polynomial.
    first, second = "Aaaaaaaaaaaaaa", "Qaaaaaaazaaaaa"
    assert crc64_iso(first) == crc64_iso(second)
    proto = f'syntax = "proto3";\npackage c;\nmessage {first} {{}}\nmessage {second} {{}}\n'
    error = _error(tmp_path, {"c.proto": proto})
    assert (
        f"c.proto:4:1: constructor id clash: message c.{second} and message c.{first} "
        f"(c.proto:3:1) both have id {crc64_iso(first)}"
    ) in error


def test_clash_with_a_rony_builtin(tmp_path: Path) -> None:
    proto = 'syntax = "proto3";\npackage mine;\nmessage Ping { int64 id = 1; }\n'
    error = _error(tmp_path, {"mine.proto": proto})
    assert "mine.proto:3:1: constructor id clash: message mine.Ping" in error
    assert "rony.core's built-in rony.Ping" in error


def test_method_id_equal_to_a_message_id_clashes(tmp_path: Path) -> None:
    proto = (
        HEADER + "package m;\nservice Sample {\n  rpc Echo (SampleEcho) returns (SampleEcho);\n}\n"
        "message SampleEcho {}\n"
    )
    error = _error(tmp_path, {"m.proto": proto})
    assert "method m.Sample.Echo and message m.SampleEcho" in error


def test_clash_with_a_dependency_is_reported_in_the_generated_file(tmp_path: Path) -> None:
    dep = 'syntax = "proto3";\npackage dep;\nmessage Thing {}\n'
    main = 'syntax = "proto3";\npackage main;\nimport "dep.proto";\nmessage Thing {}\n'
    (tmp_path / "protos").mkdir()
    (tmp_path / "protos" / "dep.proto").write_text(dep)
    (tmp_path / "protos" / "main.proto").write_text(main)
    response = generate(request_for(["main.proto"], tmp_path, includes=[tmp_path / "protos"]))
    assert "main.proto:4:1: constructor id clash: message main.Thing and message dep.Thing" in (
        response.error
    )


def test_methods_that_snake_case_alike_are_refused(tmp_path: Path) -> None:
    proto = (
        HEADER
        + "package m;\nservice S {\n  rpc GetX (R) returns (R);\n  rpc Get_X (R) returns (R);\n}\n"
        "message R {}\n"
    )
    assert "rpc S.Get_X and rpc S.GetX both become the Python method 'get_x'" in _error(
        tmp_path, {"m.proto": proto}
    )


def test_methods_with_one_tunnel_helper_name_are_refused(tmp_path: Path) -> None:
    # Different ids (Foo_BarBaz, FooBarBaz), one helper name.
    proto = (
        HEADER + "package m;\nservice Foo_Bar {\n  rpc Baz (R) returns (R);\n}\n"
        "service Foo {\n  rpc BarBaz (R) returns (R);\n}\nmessage R {}\n"
    )
    error = _error(tmp_path, {"m.proto": proto})
    assert error == (
        "m.proto:7:1: rpc Foo_Bar.Baz and rpc Foo.BarBaz both generate 'tunnel_foo_bar_baz'"
    )


def test_unimportable_module_path_is_refused(tmp_path: Path) -> None:
    error = _error(tmp_path, {"1st/x.proto": 'syntax = "proto3";\npackage x;\nmessage X1 {}\n'})
    assert "1st/x.proto: the generated modules would be named 1st.x_pb2" in error


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    proto = (
        HEADER + "package bad;\nservice Svc {\n  rpc A (Req) returns (stream Req);\n"
        '  rpc B (Req) returns (Req) { option (rony_rest) = { method: "get" path: "/:x" }; }\n}\n'
        "message Req {}\nmessage Ping {}\n"
    )
    error = _error(tmp_path, {"bad.proto": proto})
    assert len(error.splitlines()) == 3


def test_plugin_parameters_are_refused(tmp_path: Path) -> None:
    request = request_for(["sample.proto"], tmp_path)
    request.parameter = "crc32"
    assert "takes no options" in generate(request).error


def test_response_declares_proto3_optional_and_editions(tmp_path: Path) -> None:
    response = generate(request_for(["sample.proto"], tmp_path))
    features = plugin_pb2.CodeGeneratorResponse.Feature
    assert response.supported_features & features.FEATURE_PROTO3_OPTIONAL
    assert response.supported_features & features.FEATURE_SUPPORTS_EDITIONS
