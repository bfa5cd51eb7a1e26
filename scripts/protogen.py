"""Regenerate the committed protobuf code from proto/, or check that it has not drifted.

    python scripts/protogen.py          # regenerate
    python scripts/protogen.py --check  # regenerate into a temp dir and fail on any difference

Each proto tree under proto/rony/<pkg>/ is generated into packages/rony-<pkg>/src.
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parent.parent
PROTO = ROOT / "proto"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if committed code drifted")
    args = parser.parse_args()
    if not args.check:
        for rel in _generate(ROOT):
            print(f"wrote {rel}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        drift = [
            rel
            for rel in _generate(Path(tmp))
            if not (ROOT / rel).exists() or not filecmp.cmp(Path(tmp) / rel, ROOT / rel, False)
        ]
    if drift:
        for rel in drift:
            print(f"drift: {rel} differs from what proto/ generates", file=sys.stderr)
        print("run `hatch run proto:gen` and commit the result", file=sys.stderr)
        return 1
    print("proto: generated code matches proto/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
