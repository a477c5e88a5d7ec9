"""ONNX Runtime backend: a graph-fused fp32 model, or int8 dynamic quantization.

Its execution providers are the selector's choice (CPU today; room for CUDA's).

`--backend onnx` exports the loaded network once (cached on disk), lets ONNX Runtime's
transformer optimizer fuse attention, GELU and layer norms, and runs it with ORT's CPU
kernels. `--quantize int8` also quantizes the weight matmuls to 8 bits with per-channel
scales (uint8 weights unless the CPU has VNNI, see `int8_weight_type`), except the
feed-forward down projections: their inputs (post-GELU activations) carry outliers that
per-tensor dynamic activation scales cannot hold, and quantizing them costs most of the
accuracy. At export the quantized model is compared with the float32
one on fixed sentences and the cosine is logged and reported in /info.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from tei_bento.backends.base import Feeds
from tei_bento.backends.verify import BERT_FAMILY, PositionalNetwork

log = logging.getLogger(__name__)

CALIBRATION_TEXTS = [
    "What is deep learning?",
    "The capital of France is Paris, a city on the Seine.",
    "Embeddings map text to vectors so that similar meanings land close together.",
    "How do I reset my password if I no longer have access to my email account?",
    "A short query",
    "The quick brown fox jumps over the lazy dog. " * 6,
    "Photosynthesis converts light energy into chemical energy stored in glucose molecules.",
    "Le modèle renvoie un vecteur pour chaque phrase.",
]


@dataclass(frozen=True)
class OnnxReport:
    """How the ONNX model was built and how close it is to the float32 network."""

    path: str
    quantize: str | None
    fused: dict[str, int]
    min_cosine: float | None
    mean_cosine: float | None


@dataclass(frozen=True)
class OnnxTarget:
    """Where and how an ONNX model runs: the execution providers (in ORT's order of
    preference) and its intra-op threads. `backends/select.py` decides them."""

    providers: tuple[str, ...]
    threads: int
    device: torch.device


class OnnxBackend:
    def __init__(
        self, path: Path, input_names: list[str], target: OnnxTarget, report: "OnnxReport"
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = target.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(path), options, providers=list(target.providers))
        self.input_names = input_names
        self.device = target.device
        self.name = f"onnx-{report.quantize}" if report.quantize else "onnx"
        self.accuracy = (
            {"min_cosine_to_float32": report.min_cosine, "mean_cosine_to_float32": report.mean_cosine}
            if report.quantize
            else None
        )

    def forward(self, feeds: Feeds) -> torch.Tensor:
        (result,) = self.session.run(None, {name: feeds[name] for name in self.input_names})
        return torch.from_numpy(result)


def _cache_dir(folder: Path, auto_class: str, scheme: str) -> Path:
    import onnxruntime
    import transformers

    weights = sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))
    stamp = [str(folder.resolve()), auto_class, scheme, onnxruntime.__version__]
    stamp += [transformers.__version__, torch.__version__]
    stamp += [f"{w.name}:{w.stat().st_size}:{w.stat().st_mtime_ns}" for w in weights]
    key = hashlib.sha1("|".join(stamp).encode()).hexdigest()[:16]
    root = Path(os.environ.get("TEI_BENTO_CACHE", Path.home() / ".cache" / "tei-bento"))
    return root / "onnx" / key


def _export(folder: Path, auto_class: str, output: str, target: Path, names: list[str]) -> None:
    """Export with eager attention: its graph is the pattern ORT's fusions recognise."""
    import transformers

    loader = getattr(transformers, auto_class)
    network = loader.from_pretrained(folder, attn_implementation="eager", dtype=torch.float32)
    wrapper = PositionalNetwork(network.eval(), output, names)
    ids = torch.ones(2, 8, dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in [*names, "output"]}
    args = tuple(torch.zeros_like(ids) if name == "token_type_ids" else ids for name in names)
    with torch.inference_mode():
        torch.onnx.export(
            wrapper,
            args,
            str(target),
            input_names=names,
            output_names=["output"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )


def _optimize(source: Path, target: Path, config: Any) -> dict[str, int]:
    from onnxruntime.transformers import optimizer

    if getattr(config, "model_type", "") not in BERT_FAMILY:
        target.write_bytes(source.read_bytes())
        return {}
    heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_heads", 0))
    hidden = int(getattr(config, "hidden_size", 0) or getattr(config, "dim", 0))
    model = optimizer.optimize_model(
        str(source), model_type="bert", num_heads=heads, hidden_size=hidden
    )
    model.save_model_to_file(str(target))
    return {k: v for k, v in model.get_fused_operator_statistics().items() if v}


def feed_forward_down_projections(path: Path, intermediate_size: int) -> list[str]:
    """MatMul nodes whose weight maps the intermediate size back to the hidden size."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    shapes = {init.name: tuple(init.dims) for init in model.graph.initializer}
    names = []
    for node in model.graph.node:
        if node.op_type != "MatMul":
            continue
        for name in node.input:
            shape = shapes.get(name)
            if shape and len(shape) == 2 and shape[0] == intermediate_size:
                names.append(node.name)
    return names


CPUINFO = Path("/proc/cpuinfo")


def cpu_has_vnni(cpuinfo: Path = CPUINFO) -> bool:
    try:
        flags = cpuinfo.read_text()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def int8_weight_type(cpuinfo: Path = CPUINFO) -> str:
    """Signed int8 weights where the CPU has VNNI, unsigned elsewhere.

    Without VNNI, x86 multiplies uint8 activations by int8 weights with `vpmaddubsw`,
    whose int16 sums can saturate; uint8 weights take an exact (slower) path. On an AVX2
    EPYC, over 600 corpus texts tokenized as the server does (no padding to 128), min / 1st
    percentile cosine to float32: uint8 weights 0.9899 / 0.9921, int8 0.9893 / 0.9910,
    int8 with reduce_range 0.9875 / 0.9911. (Inputs padded to 128 tokens widen the gap:
    0.993 against 0.978.) VNNI accumulates in int32 and is what ORT recommends int8
    weights for."""
    return "QInt8" if cpu_has_vnni(cpuinfo) else "QUInt8"


def _quantize(source: Path, target: Path, config: Any, weight_type: str) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    intermediate = int(getattr(config, "intermediate_size", 0) or getattr(config, "hidden_dim", 0))
    quantize_dynamic(
        str(source),
        str(target),
        weight_type=getattr(QuantType, weight_type),
        per_channel=True,
        nodes_to_exclude=feed_forward_down_projections(source, intermediate),
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )


def build_onnx_backend(
    folder: Path,
    auto_class: str,
    output: str,
    config: Any,
    names: list[str],
    quantize: str | None,
    target: OnnxTarget,
    encode: Callable[[list[str]], Feeds],
) -> OnnxBackend:
    """Export (or reuse) the ONNX model; `encode(texts)` pads calibration sentences.

    The model is built in a private folder and published into the cache with one rename,
    so servers starting together on a cold cache never read each other's half-written
    files: the first to finish publishes, the others keep their own build for this run."""
    weight_type = int8_weight_type() if quantize else None
    cache = _cache_dir(folder, auto_class, f"{quantize}:{weight_type}" if quantize else str(quantize))
    if _complete(cache):
        report = OnnxReport(**json.loads((cache / "report.json").read_text()))
        return OnnxBackend(cache / "final.onnx", names, target, report)
    cache.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=f"{cache.name}.building-", dir=cache.parent))
    try:
        raw, fused_path, final = work / "model.onnx", work / "fused.onnx", work / "final.onnx"
        log.info("Exporting %s to ONNX (once; cached in %s)", folder, cache)
        _export(folder, auto_class, output, raw, names)
        fused = _optimize(raw, fused_path, config)
        if quantize == "int8":
            _quantize(fused_path, final, config, weight_type)
        else:
            fused_path.replace(final)
        min_cos = mean_cos = None
        if quantize:
            fp32 = OnnxReport(str(fused_path), None, fused, None, None)
            quantized = OnnxBackend(final, names, target, fp32)
            reference = OnnxBackend(fused_path, names, target, fp32)
            feeds = encode(CALIBRATION_TEXTS)
            got = _pooled(quantized.forward(feeds), feeds["attention_mask"])
            want = _pooled(reference.forward(feeds), feeds["attention_mask"])
            cos = (got * want).sum(1) / (np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1))
            min_cos, mean_cos = float(cos.min()), float(cos.mean())
            log.info("int8 model: cosine to float32 min %.5f mean %.5f", min_cos, mean_cos)
        report = OnnxReport(str(cache / "final.onnx"), quantize, fused, min_cos, mean_cos)
        (work / "report.json").write_text(json.dumps(report.__dict__))
        _publish(work, cache)
        # Serve the published files (ours or a concurrent server's), not the folder about to go.
        served = cache / "final.onnx" if _complete(cache) else final
        return OnnxBackend(served, names, target, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _complete(cache: Path) -> bool:
    return (cache / "final.onnx").is_file() and (cache / "report.json").is_file()


def _publish(work: Path, cache: Path) -> None:
    """Move a finished build into place unless a complete one is already there."""
    if not _complete(cache):
        shutil.rmtree(cache, ignore_errors=True)  # an incomplete build from a crashed start
    try:
        os.replace(work, cache)
    except OSError:  # another server published first: its files are as good as ours
        pass


def _pooled(output: torch.Tensor, mask: np.ndarray) -> np.ndarray:
    values = output.float().numpy()
    if values.ndim == 2:
        return values
    weights = mask[..., None]
    return (values * weights).sum(1) / weights.sum(1)
