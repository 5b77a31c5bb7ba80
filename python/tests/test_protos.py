"""The committed stubs are what proto/ generates now."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_the_committed_grpc_stubs_match_proto(tmp_path: Path) -> None:
    if importlib.util.find_spec("grpc_tools") is None:
        pytest.fail("grpcio-tools is needed: pip install './python[test]'")
    sys.path.insert(0, str(ROOT / "python" / "tools"))
    import generate_protos

    generate_protos.generate(tmp_path)
    committed = ROOT / "python" / "src" / "weft" / "v1"
    for name in ("weft_pb2.py", "weft_pb2.pyi", "weft_pb2_grpc.py"):
        assert (tmp_path / "weft" / "v1" / name).read_text() == (committed / name).read_text(), (
            f"python/src/weft/v1/{name} is stale: run python python/tools/generate_protos.py"
        )
