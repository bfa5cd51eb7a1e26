"""Regenerate the committed protobuf code from proto/, or check that it has not drifted.

    python scripts/protogen.py          # regenerate
    python scripts/protogen.py --check  # regenerate into a temp dir and fail on any difference

Each proto tree under proto/rony/<pkg>/ is generated into packages/rony-<pkg>/src. Two more
things are kept in step with proto/ the same way:

* the copy of Rony's own protos shipped inside rony-server for `rony gen`
  (packages/rony-server/src/rony/server/codegen/proto/), and
* the examples' generated code (examples/{echo,redirect}/sample_pb2.py(i), sample_rony.py), made
  with rony-server's code generator exactly as `rony gen examples/echo/sample.proto` does.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import sys
import tempfile
from pathlib import Path
from types import ModuleType

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"


CORE_PROTOS = PROTO / "rony" / "core" / "pb"
CODEGEN = ROOT / "packages" / "rony-server" / "src" / "rony" / "server" / "codegen"
SHIPPED_PROTOS = CODEGEN / "proto" / "rony" / "core" / "pb"
EXAMPLE_PROTOS = [ROOT / "examples" / p / "sample.proto" for p in ("echo", "redirect")]


def _targets() -> dict[str, list[Path]]:
    """Map each package's src folder to the .proto files it owns."""
    out: dict[str, list[Path]] = {}
    for proto in sorted(PROTO.rglob("*.proto")):
        pkg = proto.relative_to(PROTO).parts[1]  # rony/<pkg>/...
        out.setdefault(f"packages/rony-{pkg}/src", []).append(proto)
    return out


def _generate(dest_root: Path) -> list[Path]:
    import grpc_tools

    well_known = Path(grpc_tools.__file__).parent / "_proto"
    written: list[Path] = []
    for src, protos in _targets().items():
        dest = dest_root / src
        dest.mkdir(parents=True, exist_ok=True)
        rels = [str(p.relative_to(PROTO)) for p in protos]
        grpc_out = [f"--grpc_python_out={dest}"] if any("server" in r for r in rels) else []
        args = [
            "protoc",
            f"-I{PROTO}",
            f"-I{well_known}",
            f"--python_out={dest}",
            f"--pyi_out={dest}",
            *grpc_out,
            *rels,
        ]
        if protoc.main(args) != 0:
            raise SystemExit(f"protoc failed for {src}")
        for rel in rels:
            stem = rel[: -len(".proto")]
            for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
                f = dest / (stem + suffix)
                if f.exists():
                    written.append(f.relative_to(dest_root))
    return written


def _codegen() -> ModuleType:
    """rony-server's code generator, loaded by path.

    This environment installs no package of the workspace, and the generator needs only
    protobuf, grpc_tools and rony.core (it never imports the rest of rony.server).
    """
    sys.path.insert(0, str(ROOT / "packages" / "rony-core" / "src"))
    spec = importlib.util.spec_from_file_location(
        "_rony_codegen", CODEGEN / "__init__.py", submodule_search_locations=[str(CODEGEN)]
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["_rony_codegen"] = module
    spec.loader.exec_module(module)
    return module


def _shipped_drift() -> list[Path]:
    """The copies of proto/rony/core/pb/*.proto inside rony-server that differ (or are extra)."""
    want = {p.name for p in CORE_PROTOS.glob("*.proto")}
    have = {p.name for p in SHIPPED_PROTOS.glob("*.proto")}
    return [
        (SHIPPED_PROTOS / name).relative_to(ROOT)
        for name in sorted(want | have)
        if name not in want
        or name not in have
        or not filecmp.cmp(CORE_PROTOS / name, SHIPPED_PROTOS / name, False)
    ]


def _sync_shipped() -> list[Path]:
    SHIPPED_PROTOS.mkdir(parents=True, exist_ok=True)
    for rel in _shipped_drift():
        src = CORE_PROTOS / rel.name
        if src.exists():
            (ROOT / rel).write_bytes(src.read_bytes())
        else:
            (ROOT / rel).unlink()
    return [p.relative_to(ROOT) for p in sorted(SHIPPED_PROTOS.glob("*.proto"))]


def _example_drift() -> list[Path]:
    gen = _codegen()
    try:
        return [Path(p) for p in gen.check(EXAMPLE_PROTOS, ROOT, [ROOT])]
    except gen.GenerationError as exc:
        raise SystemExit(f"rony gen failed for the examples:\n{exc}") from None


def _generate_examples() -> list[Path]:
    gen = _codegen()
    try:
        result = gen.generate(EXAMPLE_PROTOS, ROOT, [ROOT])
    except gen.GenerationError as exc:
        raise SystemExit(f"rony gen failed for the examples:\n{exc}") from None
    return [Path(p).relative_to(ROOT) for p in [*result.written, *result.unchanged]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code drifted")
    args = parser.parse_args()
    if not args.check:
        for rel in [*_generate(ROOT), *_sync_shipped(), *_generate_examples()]:
            print(f"wrote {rel}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        drift = [
            rel
            for rel in _generate(Path(tmp))
            if not (ROOT / rel).exists() or not filecmp.cmp(Path(tmp) / rel, ROOT / rel, False)
        ]
    drift += _shipped_drift()
    drift += _example_drift()
    if drift:
        for rel in drift:
            print(f"drift: {rel} differs from what proto/ generates", file=sys.stderr)
        print("run `hatch run proto:gen` and commit the result", file=sys.stderr)
        return 1
    print("proto: generated code matches proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
