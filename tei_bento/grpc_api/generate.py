"""Regenerate the Python modules of TEI's gRPC API from tei.proto (grpcio-tools, a test
dependency): `python -m tei_bento.grpc_api.generate [--check]`.

The generated modules are committed, so serving needs only grpcio and protobuf;
tests/grpc_api checks that they are what this command writes. The proto is compiled from the
repository root, so the modules import each other as `tei_bento.grpc_api.tei_pb2`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
PROTO = HERE / "tei.proto"
GENERATED = ("tei_pb2.py", "tei_pb2.pyi", "tei_pb2_grpc.py")


def generate(out: Path) -> list[Path]:
    """Compile tei.proto into OUT/tei_bento/grpc_api/; returns the written modules."""
    from grpc_tools import protoc

    proto = PROTO.relative_to(ROOT)
    code = protoc.main(
        ["protoc", f"-I{ROOT}", f"--python_out={out}", f"--pyi_out={out}", f"--grpc_python_out={out}", str(proto)]
    )
    if code != 0:
        raise RuntimeError(f"protoc failed ({code}) on {proto}")
    return [out / proto.parent / name for name in GENERATED]


def stale() -> list[str]:
    """The committed modules that differ from a fresh generation."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate(Path(tmp))
        return [p.name for p in fresh if not (HERE / p.name).is_file() or (HERE / p.name).read_bytes() != p.read_bytes()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed modules are stale")
    args = parser.parse_args(argv)
    if args.check:
        names = stale()
        print("stale: " + ", ".join(names) if names else "current")
        return 1 if names else 0
    generate(ROOT)
    print("wrote " + ", ".join(str(HERE / name) for name in GENERATED))
    return 0


if __name__ == "__main__":
    sys.exit(main())
