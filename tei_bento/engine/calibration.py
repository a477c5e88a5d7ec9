"""The calibration an engine computes at start-up for quantized embeddings (see
`tei_bento.quantization`): its model's pooled vectors of the calibration texts, computed on
the model thread before serving, shortest first in batches of CALIBRATION_BATCH."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tei_bento.quantization import CALIBRATION_FILE, Calibration, read_ranges, read_texts

if TYPE_CHECKING:
    from tei_bento.engine.engine import Engine

CALIBRATION_BATCH = 32
log = logging.getLogger(__name__)


def calibrate(engine: "Engine") -> Calibration:
    settings = engine.settings
    if settings.quantization_ranges:
        return Calibration(f"ranges from {settings.quantization_ranges}", given=read_ranges(Path(settings.quantization_ranges)))
    started = time.perf_counter()
    path = Path(settings.calibration_texts) if settings.calibration_texts else CALIBRATION_FILE
    texts = read_texts(path)
    encoded = engine.tokenizers.encode_now(texts, truncate=True)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].ids))
    vectors: list[np.ndarray | None] = [None] * len(encoded)

    def run() -> None:
        for start in range(0, len(order), CALIBRATION_BATCH):
            rows = order[start : start + CALIBRATION_BATCH]
            output = engine.runner.forward([encoded[i].ids for i in rows], [encoded[i].type_ids for i in rows])
            for row, index in enumerate(rows):
                vectors[index] = np.asarray(output.vectors[row], dtype=np.float32)

    engine.batcher.run_now_in_model_thread(run)
    source = "bundled" if path == CALIBRATION_FILE else str(path)
    log.info("Calibrated int8 / uint8 buckets of `%s` on %d texts in %.2f s", engine.name, len(texts), time.perf_counter() - started)
    return Calibration(f"{source}: {len(texts)} texts", vectors=np.stack(vectors))  # type: ignore[arg-type]
