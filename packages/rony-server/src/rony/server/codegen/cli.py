"""``rony gen`` and ``rony new``: subcommands that ``rony.server.cli`` picks up.

    rony gen [PROTO ...] [--out DIR] [-I DIR ...] [--check]
    rony gen [PROTO ...] [-I DIR ...] --export constructors|openapi|proto ... [--export-out DIR]
             [--ids str|int|int64]
    rony new NAME [--dir DIR]

Also runnable as ``python -m rony.server.codegen gen|new ...``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from rony.server.cli import Subcommand

from ._driver import check, discover, generate
from ._export import EXPORTS, ID_MODES, export
from ._model import GenerationError
from ._skeleton import new_project, project_names

__all__ = ["SUBCOMMANDS"]


def _configure_gen(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "protos",
        nargs="*",
        metavar="PROTO",
        help=".proto files (default: every *.proto under the first include folder)",
    )
    p.add_argument(
        "--out", default=".", metavar="DIR", help="where generated files go (default: .)"
    )
    p.add_argument(
        "-I",
        "--include",
        dest="includes",
        action="append",
        metavar="DIR",
        help="folder imports and PROTO paths are relative to (repeatable; default: .). "
        "Rony's options.proto and protobuf's well-known types are always included",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if the files under --out differ from what would be generated",
    )
    p.add_argument(
        "--export",
        dest="exports",
        action="append",
        choices=EXPORTS,
        help="instead of code, write an export (repeatable): constructors.json (name <-> id), "
        "openapi.json (OpenAPI 3.1 of the rony_rest routes), proto/ (.proto without Rony options)",
    )
    p.add_argument(
        "--export-out",
        default="exports",
        metavar="DIR",
        help="where exports go (default: exports)",
    )
    p.add_argument(
        "--ids",
        default="str",
        choices=ID_MODES,
        help="constructors.json: ids as decimal strings (default; JavaScript keeps them exact), "
        "as exact JSON integers (int), or as signed 64-bit integers (int64, Go Rony's json_int64)",
    )


def _rel(path: Path) -> str:
    try:
        return os.path.relpath(path)
    except ValueError:  # pragma: no cover - another drive on Windows
        return str(path)


def _run_gen(args: argparse.Namespace) -> int:
    includes = args.includes or ["."]
    protos = args.protos or discover(includes[0])
    if args.exports and args.check:
        print("rony gen: --check does not apply to --export", file=sys.stderr)
        return 2
    try:
        if args.exports:
            result = export(protos, args.export_out, includes, args.exports, ids=args.ids)
        elif args.check:
            drift = check(protos, args.out, includes)
            for rel in drift:
                print(f"rony gen: {_rel(Path(args.out) / rel)} is stale", file=sys.stderr)
            if drift:
                print("rony gen: run `rony gen` again and commit the result", file=sys.stderr)
                return 1
            print("rony gen: generated files are up to date")
            return 0
        else:
            result = generate(protos, args.out, includes)
    except GenerationError as exc:
        print("rony gen: nothing was written:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    except OSError as exc:  # e.g. --out names a file; generate() has undone its writes
        print(f"rony gen: nothing was written: {exc}", file=sys.stderr)
        return 1
    for path in result.written:
        print(f"wrote {_rel(path)}")
    if not result.written:
        print(f"rony gen: {len(result.unchanged)} files already up to date")
    return 0


def _configure_new(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="project name (letters, digits, '-', '_'); also its folder")
    p.add_argument("--dir", default=".", help="folder to create the project in (default: .)")


def _run_new(args: argparse.Namespace) -> int:
    try:
        root = new_project(args.name, args.dir)
    except (ValueError, OSError) as exc:  # OSError: ProjectExistsError, --dir is a file...
        print(f"rony new: {exc}", file=sys.stderr)
        return 1
    package, _ = project_names(args.name)
    print(f"created {_rel(root)}; next, in the virtual environment that has rony:")
    print(f"  cd {_rel(root)}")
    print('  python -m pip install -e ".[test]"')
    print("  rony gen")
    print("  python -m pytest")
    print(f"  rony serve {package}.service:app --gateway 127.0.0.1:8080")
    return 0


SUBCOMMANDS = (
    Subcommand(
        "gen",
        "generate _pb2.py, _pb2.pyi and _rony.py from .proto files",
        _configure_gen,
        _run_gen,
    ),
    Subcommand("new", "create a runnable project skeleton", _configure_new, _run_new),
)
