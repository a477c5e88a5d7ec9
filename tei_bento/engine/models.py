"""Several models in one process: served name -> Engine, and which one serves a request.

Each model has its own engine (permits, tokenizer pool, batcher, model thread), so a slow
or failing model never holds another's queue. Every adapter (the HTTP app, BentoML, and
whatever comes next) routes through `Models`, so the rules live here once:

- a request that names a model (`model` in the body) gets it, by served name or model id;
  an unknown name is a 404, except where only one model is served: then TEI's rule holds
  (a different `model` is logged and the model answers), so single-model clients that send
  an OpenAI or Cohere model name keep working;
- a request that names none goes to the first model that serves its route outright, else
  the first that also answers it (SPLADE's `/embed`), else the first model, which answers
  TEI's 424 for a route it does not serve.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Iterator

from tei_bento.engine.engine import Engine
from tei_bento.errors import ValidationError
from tei_bento.settings import ModelSettings
from tei_bento.tasks.base import Route

log = logging.getLogger(__name__)


class ModelNotFound(ValidationError):
    """A `model` no engine is served under (404; OpenAI's `model_not_found`)."""

    code = "model_not_found"

    def __init__(self, name: str, served: list[str]) -> None:
        names = ", ".join(f"`{n}`" for n in served)
        super().__init__(f"The model `{name}` does not exist; served models: {names}", status=404)
        self.without_prefix()


def resident_bytes() -> int | None:
    """This process's resident memory (Linux), for the per-model memory log line."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):  # pragma: no cover - not Linux
        return None


def _mib(value: int) -> str:
    return f"{value / 2**20:,.1f} MiB"


class Models:
    def __init__(self, engines: list[Engine]) -> None:
        if not engines:
            raise ValueError("no model to serve")
        self.engines: dict[str, Engine] = {}
        for engine in engines:
            if engine.name in self.engines:
                raise ValueError(f"two models are served as `{engine.name}`: give each its own "
                                 "--served-model-name")  # fmt: skip
            self.engines[engine.name] = engine

    @classmethod
    def load(cls, models: list[ModelSettings]) -> "Models":
        """Load the models one after another, logging what each one costs in memory."""
        engines: list[Engine] = []
        try:
            for settings in models:
                engines.append(load_logged(settings))
        except BaseException:
            for engine in engines:
                engine.close()
            raise
        return cls(engines)

    def __iter__(self) -> Iterator[Engine]:
        return iter(self.engines.values())

    def __len__(self) -> int:
        return len(self.engines)

    @property
    def first(self) -> Engine:
        return next(iter(self.engines.values()))

    @property
    def names(self) -> list[str]:
        return list(self.engines)

    def get(self, name: str) -> Engine:
        engine = self.engines.get(name)
        if engine is not None:
            return engine
        for engine in self:  # the model id also selects, as OpenAI clients often send it
            if name in (engine.settings.model_id, engine.info.source.model_id):
                return engine
        if len(self.engines) == 1:
            log.warning("Request names model `%s`; serving `%s`", name, self.first.name)
            return self.first
        raise ModelNotFound(name, self.names)

    def for_route(self, route: Route | None, name: str | None = None) -> Engine:
        """The engine that answers `route` (None: any model, as /tokenize) for this request."""
        if name is not None:
            return self.get(name)
        if route is None:
            return self.first
        for engine in self:
            if route in engine.task.routes:
                return engine
        for engine in self:
            if route in engine.task.fallback_routes:
                return engine
        return self.first

    async def health(self) -> dict[str, bool]:
        return {engine.name: await engine.health() for engine in self}

    async def stop(self) -> None:
        for engine in self:
            await engine.stop()


def load_logged(settings: ModelSettings) -> Engine:
    started, before = time.perf_counter(), resident_bytes()
    try:
        engine = Engine.from_settings(settings)
    except Exception as exc:
        raise RuntimeError(f"could not load model `{settings.model_id}`: {exc}") from exc
    after = resident_bytes()
    memory = (
        f"process memory +{_mib(after - before)} (now {_mib(after)})"
        if before is not None and after is not None
        else "process memory unknown"
    )
    log.info(
        "Loaded `%s` (%s, %s backend, %s) in %.1f s: %s",
        engine.name,
        engine.task.name,
        engine.backend.name,
        engine.info.device,
        time.perf_counter() - started,
        memory,
    )
    return engine
