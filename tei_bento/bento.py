"""BentoML service options derived from the settings (name, workers, traffic, resources).

One worker owns one model copy. On a CUDA machine there is one worker per GPU: BentoML
gets `workers = resources.gpu = <GPU count>`, so its allocator reserves every GPU for the
service, and each worker then pins itself to GPU `worker_index - 1` (`pin_worker`):
BentoML 1.4's allocator (_bentoml_impl/server/allocator.py) hands *all* the service's GPUs
to every worker in one CUDA_VISIBLE_DEVICES; per-worker GPU environments only existed for
the legacy runners. Anything here can still be overridden by BentoML's own configuration
(BENTOML_CONFIG / BENTOML_CONFIG_OVERRIDES, `services.tei-bento.workers`, ...).
"""

from __future__ import annotations

from typing import Any

from tei_bento.settings import Settings

GPU_DEVICES = ("auto", "cuda")
"""Device settings under which the service claims the machine's GPUs."""


def gpu_count(settings: Settings) -> int:
    """GPUs the service should run on: none when the settings force a non-CUDA device."""
    if settings.device not in GPU_DEVICES:
        return 0
    from tei_bento.model.device import cuda_device_count

    return cuda_device_count()


def service_config(settings: Settings, gpus: int | None = None) -> dict[str, Any]:
    """Keyword arguments of `@bentoml.service`; `gpus` defaults to what torch sees."""
    gpus = gpu_count(settings) if gpus is None else gpus
    workers = max(1, gpus)
    # Requests past max_concurrent_requests are answered 429 by each worker's engines, with
    # TEI's error body; BentoML splits its own limit across the workers, so it stays at 4x
    # that per worker and never answers first.
    permits = sum(model.max_concurrent_requests for model in settings.model_settings())
    max_concurrency = permits * 4 * workers
    config: dict[str, Any] = {
        "name": "tei-bento",
        "workers": workers,
        # `concurrency` is BentoCloud's autoscaling target (requests one replica takes at
        # once): the permits. Set here because a service with a @bentoml.task would
        # otherwise default it to 1.
        "traffic": {
            "timeout": 600,
            "max_concurrency": max_concurrency,
            "concurrency": permits * workers,
        },
        "http": {"port": settings.port},
        "logging": {"access": {"enabled": False}},
    }
    if gpus > 0:
        config["resources"] = {"gpu": gpus}
    return config


def pin_worker(settings: Settings, worker_index: int | None) -> int | None:
    """Pin this BentoML worker to its own GPU; a no-op on CPU or a forced non-CUDA device."""
    if settings.device not in GPU_DEVICES:
        return None
    from tei_bento.model.device import pin_worker_gpu

    return pin_worker_gpu(worker_index)
