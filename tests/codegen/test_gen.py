"""``rony gen``: protoc + plugin through the real driver and CLI; nothing half-written."""

from __future__ import annotations

import filecmp
import os
import sys
from pathlib import Path

import pytest

import rony.server
from rony.server import cli
from rony.server.codegen import (
    GENERATOR_VERSION,
    RONY_PROTO_DIR,
    GenerationError,
    check,
    discover,
    generate,
)
from tests.codegen._util import FIXTURES, GOLDEN, ROOT, run

SAMPLE_FILES = {"sample_pb2.py", "sample_pb2.pyi", "sample_rony.py", "sample_cli.py"}  # rony_cli


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {
        p.relative_to(folder).as_posix(): (p.read_bytes(), p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def test_generate_writes_pb2_pyi_and_rony(tmp_path: Path) -> None:
    result = generate([FIXTURES / "sample.proto"], tmp_path / "out", [FIXTURES])
    assert {p.name for p in result.written} == SAMPLE_FILES
    assert (tmp_path / "out" / "sample_rony.py").read_text() == (
        GOLDEN / "sample_rony.py"
    ).read_text()
    again = generate([FIXTURES / "sample.proto"], tmp_path / "out", [FIXTURES])
    assert again.written == []
    assert {p.name for p in again.unchanged} == SAMPLE_FILES


def test_generate_keeps_unchanged_files_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    generate([FIXTURES / "sample.proto"], out, [FIXTURES])
    before = _snapshot(out)
    generate([FIXTURES / "sample.proto"], out, [FIXTURES])
    assert _snapshot(out) == before


def test_check_reports_drift(tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert {p.name for p in check([FIXTURES / "sample.proto"], out, [FIXTURES])} == SAMPLE_FILES
    generate([FIXTURES / "sample.proto"], out, [FIXTURES])
    assert check([FIXTURES / "sample.proto"], out, [FIXTURES]) == []
    (out / "sample_rony.py").write_text("# edited\n")
    assert check([FIXTURES / "sample.proto"], out, [FIXTURES]) == [Path("sample_rony.py")]


def _bad_project(tmp_path: Path, body: str) -> tuple[Path, Path]:
    protos = tmp_path / "protos"
    protos.mkdir()
    (protos / "good.proto").write_text('syntax = "proto3";\npackage good;\nmessage Good {}\n')
    (protos / "bad.proto").write_text(body)
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("user file")
    (out / "bad_rony.py").write_text("# an older generation\n")
    return protos, out


BAD = {
    "parse error": (
        'syntax = "proto3";\npackage bad;\nmessage Bad {\n  int64 id = 1\n}\n',
        ['bad.proto:5:1: Expected ";".'],
    ),
    "id clash": (
        'syntax = "proto3";\npackage bad;\nmessage Good {}\n',
        ["constructor id clash: message good.Good and message bad.Good", "bad.proto:3:1"],
    ),
    "rest binding": (
        'syntax = "proto3";\npackage bad;\nimport "rony/core/pb/options.proto";\n'
        'service S {\n  rpc M (R) returns (R) {\n    option (rony_rest) = {method: "get" '
        'path: "/r/:missing"};\n  }\n}\nmessage R { int64 id = 1; }\n',
        [
            "bad.proto:6:5: rony_rest path parameter 'missing' binds to field 'missing', which "
            "bad.R does not have"
        ],
    ),
    "go-style options import": (
        'syntax = "proto3";\npackage bad;\nimport "options.proto";\nmessage R {}\n',
        ["options.proto: File not found", 'imported as "rony/core/pb/options.proto"'],
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_writes_nothing(case: str, tmp_path: Path) -> None:
    body, expected = BAD[case]
    protos, out = _bad_project(tmp_path, body)
    before = _snapshot(out)
    with pytest.raises(GenerationError) as info:
        generate(sorted(protos.glob("*.proto")), out, [protos])
    text = str(info.value)
    for piece in expected:
        assert piece in text
    assert _snapshot(out) == before


def test_bad_input_does_not_create_the_output_folder(tmp_path: Path) -> None:
    protos, _ = _bad_project(tmp_path, "not a proto")
    with pytest.raises(GenerationError, match=r"bad\.proto:1:1"):
        generate([protos / "bad.proto"], tmp_path / "new" / "out", [protos])
    assert not (tmp_path / "new").exists()


def test_cli_gen_reports_and_exits_nonzero(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    body, expected = BAD["rest binding"]
    protos, out = _bad_project(tmp_path, body)
    before = _snapshot(out)
    code = cli.main(["gen", str(protos / "bad.proto"), "--out", str(out), "-I", str(protos)])
    err = capsys.readouterr().err
    assert code == 1
    assert "rony gen: nothing was written" in err
    assert expected[0] in err
    assert _snapshot(out) == before


def test_cli_gen_and_new_report_an_unwritable_destination(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # --out / --dir naming a file: a one-line error and exit 1, not an OSError traceback.
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    sample = FIXTURES / "sample.proto"
    code = cli.main(["gen", str(sample), "--out", str(blocker), "-I", str(FIXTURES)])
    err = capsys.readouterr().err
    assert code == 1
    assert "rony gen: nothing was written: [Errno" in err
    assert blocker.read_text() == ""
    assert cli.main(["new", "hello", "--dir", str(blocker)]) == 1
    assert "rony new: [Errno" in capsys.readouterr().err


def test_cli_gen_defaults_to_every_proto_under_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.proto").write_text('syntax = "proto3";\npackage pa;\nmessage Aa {}\n')
    (tmp_path / ".hidden").mkdir()
    (tmp_path / ".hidden" / "x.proto").write_text("garbage")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["gen"]) == 0
    assert "wrote pkg/a_rony.py" in capsys.readouterr().out
    assert (tmp_path / "pkg" / "a_pb2.py").is_file()
    assert cli.main(["gen", "--check"]) == 0
    (tmp_path / "pkg" / "a_rony.py").write_text("")
    assert cli.main(["gen", "--check"]) == 1
    assert "pkg/a_rony.py is stale" in capsys.readouterr().err


def test_discover_skips_hidden_and_virtualenv_folders(tmp_path: Path) -> None:
    for rel in ("a.proto", "sub/b.proto", ".git/c.proto", "_data/d.proto", "venv/e.proto"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("")
    found = [p.relative_to(tmp_path).as_posix() for p in discover(tmp_path)]
    assert found == ["a.proto", "sub/b.proto"]


def test_rony_help_lists_gen_and_new() -> None:
    res = run([sys.executable, "-m", "rony.server.cli", "--help"])
    assert res.returncode == 0, res.stderr
    assert "gen" in res.stdout
    assert "new" in res.stdout


@pytest.mark.slow
def test_plugin_runs_under_grpc_tools_protoc_as_console_script(tmp_path: Path) -> None:
    # What a user without `rony gen` does: protoc with the installed protoc-gen-rony script.
    exe = Path(sys.executable).parent / ("protoc-gen-rony" + (".exe" if os.name == "nt" else ""))
    if not exe.exists():
        pytest.skip("protoc-gen-rony console script is not installed in this environment")
    res = run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{FIXTURES}",
            f"-I{RONY_PROTO_DIR}",
            f"--plugin=protoc-gen-rony={exe}",
            f"--rony_out={tmp_path}",
            "sample.proto",
        ]
    )
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "sample_rony.py").read_text() == (GOLDEN / "sample_rony.py").read_text()


def test_shipped_protos_equal_the_root_protos() -> None:
    root = ROOT / "proto" / "rony" / "core" / "pb"
    names = sorted(p.name for p in root.glob("*.proto"))
    assert names == sorted(
        p.name for p in (RONY_PROTO_DIR / "rony" / "core" / "pb").glob("*.proto")
    )
    for name in names:
        assert filecmp.cmp(root / name, RONY_PROTO_DIR / "rony" / "core" / "pb" / name, False), (
            f"{name}: the copy in rony.server.codegen differs; run `hatch run proto:gen`"
        )


def test_generator_version_is_the_package_version() -> None:
    assert rony.server.__version__ == GENERATOR_VERSION
