"""The ColBERT tests' reference, run in the PyLate environment (.venv-pylate), never the server's.

    python tests/pylate_reference.py BASE_FOLDER OUT_DIR TEXTS_JSON

Builds a ColBERT folder from BASE_FOLDER the way a PyLate user does
(`models.ColBERT(model_name_or_path=BASE_FOLDER).save(...)`, seeded: the projection and the
prefix tokens' embeddings are random), a copy with `attend_to_expansion_tokens: true`, and
writes what `ColBERT(folder).encode(texts, is_query=...)` answers for the queries and
documents of TEXTS_JSON to OUT_DIR/reference.json.
"""

import json
import shutil
import sys
from pathlib import Path

import torch
from pylate import models


def encode(folder: Path, texts: dict) -> dict:
    model = models.ColBERT(model_name_or_path=str(folder), device="cpu")
    return {
        "queries": [v.tolist() for v in model.encode(texts["queries"], is_query=True)],
        "documents": [v.tolist() for v in model.encode(texts["documents"], is_query=False)],
    }


def main() -> None:
    base, out, texts_file = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
    texts = json.loads(texts_file.read_text())
    torch.manual_seed(0)
    folder = out / "tiny-colbert"
    models.ColBERT(model_name_or_path=str(base), device="cpu").save(str(folder))
    attending = out / "tiny-colbert-attending"
    shutil.copytree(folder, attending, dirs_exist_ok=True)
    config_file = attending / "config_sentence_transformers.json"
    config = json.loads(config_file.read_text())
    config["attend_to_expansion_tokens"] = True
    config_file.write_text(json.dumps(config, indent=2))
    reference = {"default": encode(folder, texts), "attending": encode(attending, texts)}
    (out / "reference.json").write_text(json.dumps(reference))


if __name__ == "__main__":
    main()
