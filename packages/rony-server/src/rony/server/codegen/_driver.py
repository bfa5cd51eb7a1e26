"""``rony gen``: run protoc (grpc_tools) with Rony's include path and the rony plugin.

Everything is generated into a temporary folder first: ``_pb2.py``, ``_pb2.pyi``, ``_rony.py``,
for a file with ``rony_model`` messages ``_repo.py``, and for one with ``rony_cli`` services
``_cli.py``. Only when protoc and the plugin both succeeded are the files moved into the output
folder (unchanged files are left alone), so a bad .proto never leaves half a set behind.

The plugin runs in a child process that protoc starts. It is started through a small script that
loads this ``codegen`` package from its folder under a private name, so the child needs only
protobuf and rony.core (not aiohttp and the rest of rony.server), and works the same from an
installed rony-server and from a source checkout (scripts/protogen.py uses that).
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ._model import GenerationError

__all__ = [
    "PROTOC_TIMEOUT",
    "RONY_PROTO_DIR",
    "GenResult",
    "check",
    "discover",
    "generate",
    "include_path",
    "run_protoc",
]

PROTOC_TIMEOUT = 120.0
"""Seconds protoc (and the plugin it runs) may take before ``rony gen`` gives up."""

RONY_PROTO_DIR = Path(__file__).resolve().parent / "proto"
"""Rony's own .proto files (``rony/core/pb/options.proto``, ``msg.proto``), shipped as package
data: a user's proto imports ``"rony/core/pb/options.proto"`` with no flags."""

_SKIP_DIRS = frozenset({"node_modules", "site-packages", "venv", "build", "dist"})
_OUTPUT_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_rony.py", "_repo.py", "_cli.py")


@dataclass(frozen=True, slots=True)
class GenResult:
    """What ``generate`` did: ``written`` (new or changed) and ``unchanged`` files, under out."""

    written: list[Path]
    unchanged: list[Path]


def include_path(includes: Sequence[str | os.PathLike[str]] = ()) -> list[str]:
    """The user's include folders, then Rony's protos, then protobuf's well-known types."""
    import grpc_tools

    well_known = Path(grpc_tools.__file__).resolve().parent / "_proto"
    return [*(os.fspath(i) for i in includes), os.fspath(RONY_PROTO_DIR), os.fspath(well_known)]


def discover(root: str | os.PathLike[str] = ".") -> list[Path]:
    """Every ``*.proto`` under ``root``, skipping hidden, ``_``-prefixed and virtualenv folders."""
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(
            d
            for d in dirnames
            if not d.startswith((".", "_")) and d not in _SKIP_DIRS and not d.endswith(".egg-info")
        )
        found.extend(Path(dirpath, f) for f in sorted(filenames) if f.endswith(".proto"))
    return found


def _plugin_script(folder: Path) -> Path:
    """An executable protoc can start as ``protoc-gen-rony``, loading this package by path."""
    import rony.core

    package_dir = Path(__file__).resolve().parent
    # The folder holding the `rony` namespace that rony.core was imported from.
    core_root = Path(rony.core.__file__).resolve().parent.parent.parent
    code = folder / "protoc_gen_rony.py"
    code.write_text(
        "import importlib.util, sys\n"
        f"sys.path.insert(0, {os.fspath(core_root)!r})\n"
        "spec = importlib.util.spec_from_file_location(\n"
        f"    '_rony_codegen', {os.fspath(package_dir / '__init__.py')!r},\n"
        f"    submodule_search_locations=[{os.fspath(package_dir)!r}])\n"
        "module = importlib.util.module_from_spec(spec)\n"
        "sys.modules['_rony_codegen'] = module\n"
        "spec.loader.exec_module(module)\n"
        "from _rony_codegen.plugin import main\n"
        "sys.exit(main())\n"
    )
    if os.name == "nt":  # pragma: no cover - protoc starts a .bat there
        script = folder / "protoc-gen-rony.bat"
        script.write_text(f'@"{sys.executable}" "{code}" %*\r\n')
    else:
        # A shell wrapper rather than a #! line: a #! line longer than ~127 bytes (a deep
        # virtualenv) is silently cut by the kernel.
        script = folder / "protoc-gen-rony"
        script.write_text(
            f'#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(os.fspath(code))} "$@"\n'
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def _clean_protoc_errors(stderr: str) -> list[str]:
    problems: list[str] = []
    for line in stderr.strip().splitlines():
        line = line.removeprefix("--rony_out: ").rstrip()
        if not line:
            continue
        problems.append(line)
        if "options.proto: File not found" in line or 'Import "options.proto"' in line:
            problems.append(
                'hint: Rony\'s options are imported as "rony/core/pb/options.proto" '
                '(Go Rony used "options.proto")'
            )
    return problems or ["protoc failed without a message"]


def run_protoc(
    protos: Sequence[str | os.PathLike[str]],
    out: Path,
    includes: Sequence[str | os.PathLike[str]] = (),
    *,
    timeout: float = PROTOC_TIMEOUT,
) -> None:
    """Run protoc with --python_out, --pyi_out and --rony_out into ``out`` (GenerationError)."""
    if not protos:
        raise GenerationError(["no .proto files given (and none found)"])
    with tempfile.TemporaryDirectory(prefix="rony-plugin-") as tmp:
        plugin = _plugin_script(Path(tmp))
        protoc(
            protos,
            includes,
            [
                f"--plugin=protoc-gen-rony={plugin}",
                f"--python_out={out}",
                f"--pyi_out={out}",
                f"--rony_out={out}",
            ],
            timeout,
        )


def protoc(
    protos: Sequence[str | os.PathLike[str]],
    includes: Sequence[str | os.PathLike[str]],
    outputs: Sequence[str],
    timeout: float,
) -> None:
    """grpc_tools' protoc on ``protos`` with ``outputs`` (its --*_out flags); a failure or a
    run past ``timeout`` is a GenerationError with protoc's messages cleaned."""
    args = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *(f"-I{p}" for p in include_path(includes)),
        *outputs,
        *(os.fspath(p) for p in protos),
    ]
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        raise GenerationError([f"protoc did not finish within {timeout:g} s"]) from None
    if proc.returncode != 0:
        raise GenerationError(_clean_protoc_errors(proc.stderr))


def _generated(tmp: Path) -> dict[Path, bytes]:
    return {
        p.relative_to(tmp): p.read_bytes()
        for p in sorted(tmp.rglob("*"))
        if p.is_file() and p.name.endswith(_OUTPUT_SUFFIXES)
    }


def check(
    protos: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    includes: Sequence[str | os.PathLike[str]] = (),
) -> list[Path]:
    """Generate into a temporary folder; return the files under ``out`` that differ (or lack)."""
    with tempfile.TemporaryDirectory(prefix="rony-gen-") as tmp:
        run_protoc(protos, Path(tmp), includes)
        files = _generated(Path(tmp))
    dest = Path(out)
    return [
        rel
        for rel, data in files.items()
        if not (dest / rel).is_file() or (dest / rel).read_bytes() != data
    ]


def generate(
    protos: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    includes: Sequence[str | os.PathLike[str]] = (),
) -> GenResult:
    """Generate ``_pb2.py``, ``_pb2.pyi`` and ``_rony.py`` for ``protos`` into ``out``.

    Raises ``GenerationError`` (nothing written) when protoc or the plugin fails. ``includes``
    are the folders protos are found in (``-I``); each proto's path below its include folder is
    the module path of its generated code (``pkg/svc.proto`` -> ``pkg/svc_rony.py``, imported as
    ``pkg.svc_rony``), as protoc itself does for ``_pb2``.
    """
    with tempfile.TemporaryDirectory(prefix="rony-gen-") as tmp:
        run_protoc(protos, Path(tmp), includes)
        files = _generated(Path(tmp))
    return _install(files, Path(out))


def _install(files: dict[Path, bytes], dest: Path) -> GenResult:
    """Stage every file beside its target, then rename them all in; undo on any failure."""
    written: list[Path] = []
    unchanged: list[Path] = []
    staged: list[tuple[Path, Path]] = []
    made: list[Path] = []
    try:
        for rel, data in files.items():
            target = dest / rel
            if target.is_file() and target.read_bytes() == data:
                unchanged.append(target)
                continue
            missing = [p for p in (target.parent, *target.parent.parents) if not p.exists()]
            for folder in reversed(missing):
                folder.mkdir()
                made.append(folder)
            fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            staged.append((Path(tmp_name), target))
        for tmp_path, target in staged:
            os.chmod(tmp_path, 0o644)
            os.replace(tmp_path, target)
            written.append(target)
    except BaseException:
        for tmp_path, _ in staged:
            tmp_path.unlink(missing_ok=True)
        for folder in reversed(made):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    return GenResult(written, unchanged)
