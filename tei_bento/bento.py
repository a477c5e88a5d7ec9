"""BentoML service options derived from the settings (name, workers, traffic, resources)."""

from __future__ import annotations

from typing import Any

from tei_bento.settings import Settings


def service_config(settings: Settings) -> dict[str, Any]:
    # One worker owns the model; requests past max_concurrent_requests are answered 429 by
    # the engine itself, so BentoML's concurrency limit stays above it and never answers first.
    return {
        "name": "tei-bento",
        "workers": 1,
        "traffic": {"timeout": 600, "max_concurrency": settings.max_concurrent_requests * 4},
        "http": {"port": settings.port},
        "logging": {"access": {"enabled": False}},
    }
