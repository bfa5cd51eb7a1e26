"""Helpers for the code generator's tests: build a CodeGeneratorRequest with protoc in-process,
run tools as subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from google.protobuf.compiler import plugin_pb2
from google.protobuf.descriptor_pb2 import FileDescriptorSet
from grpc_tools import protoc

from rony.server.codegen._driver import include_path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIXTURES = HERE / "fixtures"
GOLDEN = HERE / "golden"
SRC = [
    ROOT / "packages" / p / "src" for p in ("rony-core", "rony-store", "rony-client", "rony-server")
]


def request_for(
    protos: Sequence[str], tmp: Path, includes: Sequence[Path] = (FIXTURES,)
) -> plugin_pb2.CodeGeneratorRequest:
    """The request protoc would send the plugin for ``protos`` (names relative to includes)."""
    out = tmp / "descriptors.pb"
    args = [
        "protoc",
        *(f"-I{i}" for i in include_path(includes)),
        f"--descriptor_set_out={out}",
        "--include_imports",
        "--include_source_info",
        *protos,
    ]
    assert protoc.main(args) == 0, f"protoc failed on {protos}"
    files = FileDescriptorSet.FromString(out.read_bytes()).file
    return plugin_pb2.CodeGeneratorRequest(file_to_generate=list(protos), proto_file=files)


def fixture_protos() -> list[str]:
    return sorted(p.relative_to(FIXTURES).as_posix() for p in FIXTURES.rglob("*.proto"))


def run(args: Sequence[str | os.PathLike[str]], cwd: Path | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:  # fmt: skip
    return subprocess.run(
        [os.fspath(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
        check=False,
    )  # fmt: skip


def ruff(
    *args: str | os.PathLike[str], cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "ruff", *args], cwd=cwd)


def _module_name(path: Path, roots: Sequence[Path]) -> str:
    for root in roots:
        if path.is_relative_to(root):
            return ".".join(path.relative_to(root).with_suffix("").parts)
    raise ValueError(path)


def mypy_strict(
    files: Sequence[Path], extra_path: Sequence[Path], tmp: Path
) -> subprocess.CompletedProcess[str]:
    """mypy --strict on ``files``, the workspace's packages on its path; heavy third-party
    packages the server imports are skipped (their types are not what is being checked)."""
    # protoc's own .pyi files are not ours to check (a map field's is not --strict clean).
    pb2 = sorted(
        {_module_name(p, extra_path) for root in extra_path for p in root.rglob("*_pb2.pyi")}
    )
    config = tmp / "mypy.ini"
    config.write_text(
        "[mypy]\n"
        "strict = True\n"
        "python_version = 3.11\n"
        "namespace_packages = True\n"
        "explicit_package_bases = True\n"
        "follow_imports = silent\n"
        f"cache_dir = {tmp / '.mypy_cache'}\n"
        "[mypy-aiohttp.*,aioquic.*,lmdb.*,grpc.*,grpc_tools.*,websockets.*,yarl.*,multidict.*]\n"
        "follow_imports = skip\n"
        "ignore_missing_imports = True\n"
        + (f"[mypy-{','.join(pb2)}]\nignore_errors = True\n" if pb2 else "")
    )
    env = dict(os.environ)
    env["MYPYPATH"] = os.pathsep.join(os.fspath(p) for p in [*extra_path, *SRC])
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", os.fspath(config), *map(os.fspath, files)],
        capture_output=True, text=True, timeout=120, check=False, env=env, cwd=tmp,
    )  # fmt: skip
