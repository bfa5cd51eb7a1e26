"""Generated command-line clients (``rony_cli``): ``python -m <proto>_cli`` as a user runs it, a
child process, against a real node this test serves on 127.0.0.1:0 (HTTP and WebSocket).

The cgapi fixture has a field of every kind, so every flag conversion is checked end to end:
the node mirrors the request back and the printed protobuf JSON must hold exactly the values
the flags gave (and the ``rony_default`` ones)."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rony.server.codegen import generate
from rony.server.codegen.plugin import generate as plugin_generate
from rony.server.testing import serve
from tests.codegen._cgapi import cgapi_app
from tests.codegen._util import FIXTURES, ROOT, request_for

MAX_U64 = "18446744073709551615"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, ModuleType]]:
    out = tmp_path_factory.mktemp("cgapi_cli")
    generate([FIXTURES / "cgapi" / "api.proto"], out, [FIXTURES])
    sys.path.insert(0, str(out))
    try:
        # The in-process node imports the same generated modules the child processes run.
        import importlib

        yield out, importlib.import_module("cgapi.api_rony")
    finally:
        sys.path.remove(str(out))


async def _cli(
    module: str, *args: str, path: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    """``python -m module args...`` -> (exit status, stdout, stderr)."""
    pythonpath = os.pathsep.join(str(p) for p in (path, ROOT) if p is not None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, cwd=ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath, "RONY_URL": "", **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_help_lists_commands_flags_defaults_and_help(
    generated: tuple[Path, ModuleType],
) -> None:
    out, _ = generated
    top, service, method = await asyncio.gather(
        _cli("cgapi.api_cli", "--help", path=out),
        _cli("cgapi.api_cli", "api", "--help", path=out),
        _cli("cgapi.api_cli", "api", "mirror", "--help", path=out),
    )
    assert top[0] == 0, top[2]
    assert "python -m cgapi.api_cli" in top[1]
    assert "http://127.0.0.1:8080" in top[1]  # rony_cli { protocol: "http" }
    assert service[0] == 0, service[2]
    assert "mirror" in service[1]
    assert "fail" in service[1]
    assert "secret" not in service[1]  # rony_internal: no command
    code, text, err = method
    assert code == 0, err
    flat = " ".join(text.split())
    assert "a 32-bit number (int32; default -5)" in flat  # rony_help + rony_default
    assert "u64 is the path parameter of Mirror. (uint64)" in flat  # the field's comment
    assert "--flag, --no-flag" in flat
    assert "--snake-name TEXT" in flat
    assert "API_COLOR_UNSPECIFIED, API_COLOR_RED, API_COLOR_BLUE" in flat
    assert "--counts JSON" in flat


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_every_kind_of_flag_reaches_the_node(
    generated: tuple[Path, ModuleType], scheme: str
) -> None:
    out, rony = generated
    flags = [
        "--i64", "-9007199254740993", "--u32", "4294967295", "--u64", MAX_U64, "--s64", "-2",
        "--f64", "7", "--dbl", "1.5", "--flt", "inf", "--no-flag", "--blob", "hé",
        "--color", "API_COLOR_RED", "--many", "1", "--many", "-2", "--counts", '{"a": "3"}',
        "--inner", '{"v": "-4"}', "--inners", '[{"v": "5"}, {}]', "--at", '"2026-01-02T03:04:05Z"',
        "--maybe", "6", "--note", "", "--snake-name", "s", "--pick-b", "7",
        "--colors", "API_COLOR_BLUE", "--colors", "1",
    ]  # fmt: skip
    async with serve(cgapi_app(rony)) as edge:
        url = edge.url.replace("http://", f"{scheme}://")
        code, text, err = await _cli("cgapi.api_cli", "--url", url, "api", "mirror", *flags,
                                     path=out)  # fmt: skip
    assert code == 0, err
    assert json.loads(text) == {
        "i32": -5, "text": "hello",  # rony_default; flag's default (true) overridden
        "i64": "-9007199254740993", "u32": 4294967295, "u64": MAX_U64, "s64": "-2", "f64": "7",
        "dbl": 1.5, "flt": "Infinity", "blob": "aMOp", "color": "API_COLOR_RED",
        "many": ["1", "-2"], "counts": {"a": "3"}, "inner": {"v": "-4"}, "inners": [{"v": "5"}, {}],
        "at": "2026-01-02T03:04:05Z", "maybe": "6", "note": "", "snakeName": "s", "pickB": "7",
        "colors": ["API_COLOR_BLUE", "API_COLOR_RED"],
    }  # fmt: skip
    assert text.count("\n") == 1  # one line of JSON


async def test_errors_bad_flags_and_no_node(generated: tuple[Path, ModuleType]) -> None:
    out, rony = generated
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    async with serve(cgapi_app(rony)) as edge:

        def call(*args: str, url: str = edge.url) -> Any:
            return _cli("cgapi.api_cli", "--url", url, *args, path=out)

        failed, bad_int, bad_json, bad_enum, unreachable, env_url = await asyncio.gather(
            call("api", "fail", "--text", "NOPE"),
            call("api", "mirror", "--u32", "-1"),
            call("api", "mirror", "--inner", "{"),
            call("api", "mirror", "--color", "PINK"),
            call("--timeout", "1", "api", "mirror", url=dead),
            _cli("cgapi.api_cli", "api", "mirror", "--text", "env", path=out,
                 env={"RONY_URL": edge.url}),
        )  # fmt: skip
    assert failed[0] == 1
    assert "E01:NOPE (as asked)" in failed[2]  # the Error reply, code:items (description)
    assert failed[1] == ""
    assert bad_int[0] == 2
    assert "invalid uint32 value: '-1'" in bad_int[2]
    assert bad_json[0] == 2
    assert "--inner" in bad_json[2]
    assert bad_enum[0] == 2
    assert "invalid ApiColor value: 'PINK'" in bad_enum[2]
    assert unreachable[0] == 1
    assert "error:" in unreachable[2]
    assert env_url[0] == 0, env_url[2]
    assert json.loads(env_url[1])["text"] == "env"


async def test_echo_example_cli() -> None:
    from examples.echo.app import app

    async with serve(app) as edge:
        url = edge.url.replace("http://", "ws://")
        code, text, err = await _cli(
            "examples.echo.sample_cli", "--url", url, "sample", "echo", "--id", "7",
            "--random-text", "hi",
        )  # fmt: skip
    assert code == 0, err
    assert json.loads(text) == {"ReqID": "7", "RandomText": "hi"}


@pytest.mark.parametrize(
    ("field", "option", "error"),
    [
        ("int32 n = 1", '(rony_default) = "x"', "rony_default 'x' is not a int32"),
        ("uint32 n = 1", '(rony_default) = "-1"', "rony_default '-1' is not a uint32"),
        ("bool n = 1", '(rony_default) = "yes"', "is not true, false, 1 or 0"),
        ("repeated string n = 1", '(rony_default) = "a"', "singular scalar and enum fields"),
        ("CliBadE n = 1", '(rony_default) = "NOPE"', "is not a value of cgbad.CliBadE"),
    ],
)
def test_bad_rony_default_is_a_generation_error(
    tmp_path: Path, field: str, option: str, error: str
) -> None:
    (tmp_path / "bad.proto").write_text(
        'syntax = "proto3";\npackage cgbad;\nimport "rony/core/pb/options.proto";\n'
        "enum CliBadE { CLI_BAD_E_ZERO = 0; }\n"
        f"message CliBadQ {{ {field} [{option}]; }}\n"
        "service CliBad { option (rony_cli) = {}; rpc M (CliBadQ) returns (CliBadQ); }\n"
    )
    response = plugin_generate(request_for(["bad.proto"], tmp_path, [tmp_path]))
    assert error in response.error
    assert "bad.proto:5:" in response.error  # where the field is


def test_bad_protocol_and_colliding_flags(tmp_path: Path) -> None:
    (tmp_path / "bad.proto").write_text(
        'syntax = "proto3";\npackage cgbad;\nimport "rony/core/pb/options.proto";\n'
        "message CliBadQ { string a_b = 1; string A_B = 2; string help = 3; }\n"
        'service CliBad { option (rony_cli) = { protocol: "tcp" };\n'
        "  rpc M (CliBadQ) returns (CliBadQ); }\n"
    )
    response = plugin_generate(request_for(["bad.proto"], tmp_path, [tmp_path]))
    assert "rony_cli protocol 'tcp' is not ws or http" in response.error
    # a_b -> --a-b; A_B -> --a-b taken, so its own name --A_B; help -> --help twice: refused.
    assert "field cgbad.CliBadQ.help would be the flag --help" in response.error


def test_no_cli_module_without_rony_cli(tmp_path: Path) -> None:
    response = plugin_generate(request_for(["cgcalc/calc.proto"], tmp_path))
    assert [f.name for f in response.file] == ["cgcalc/calc_rony.py"]
