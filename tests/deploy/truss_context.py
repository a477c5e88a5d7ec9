"""Run `truss image build-context` for many Truss folders in one process, offline.

Usage: python -m tests.deploy.truss_context OUT_ROOT TRUSS_DIR [TRUSS_DIR ...]

`model_cache` with `use_volume: true` makes truss ask the Hugging Face Hub for the file list
of each repo (truss_transfer.create_basetenpointer_from_models) to write the download
manifest; that is the only network call of the build context, and this machine cannot reach
the Hub, so it is replaced by an empty manifest. Everything else is truss's own CLI.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    import truss_transfer

    truss_transfer.create_basetenpointer_from_models = lambda models: json.dumps({"pointers": []})
    from truss.cli.cli import truss_cli

    out_root, *truss_dirs = argv
    for index, truss_dir in enumerate(truss_dirs):
        out = Path(out_root) / str(index)
        truss_cli(
            ["image", "build-context", str(out), truss_dir, "--non-interactive"],
            standalone_mode=False,
        )
        if not (out / "Dockerfile").is_file():
            print(f"no Dockerfile for {truss_dir}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
