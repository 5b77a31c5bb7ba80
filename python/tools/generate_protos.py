"""Regenerates the gRPC stubs in src/weft/v1/ from proto/ (run from anywhere).

    python python/tools/generate_protos.py [OUT_DIR]

Needs grpcio-tools at the version pinned in pyproject.toml's `test` extra, so that the output
is byte-for-byte what tests/test_protos.py expects; the stubs are committed so that
`pip install ./python` needs no code generator.
"""

from __future__ import annotations

import sys
from pathlib import Path

from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO = ROOT / "proto"


def generate(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        str(PROTO / "weft" / "v1" / "weft.proto"),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    init = out / "weft" / "v1" / "__init__.py"
    if not init.exists():
        init.write_text('"""Stubs generated from proto/weft/v1/weft.proto: do not edit."""\n')


if __name__ == "__main__":
    generate(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "python" / "src")
