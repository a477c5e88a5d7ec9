"""Stage plans: how long and how much each mode runs, and the config flag syntax.

Why fixed plans: numbers from two runs are comparable only if both ran the same stages
for the same time; `full` is sized for about 8 minutes plus about 6 per extra config on 2
cores, `quick` for under a minute with at most 8 clients (a smoke test, not a result).
"""

from __future__ import annotations

import argparse
import shlex
from dataclasses import dataclass, replace
from typing import Any

from bench.loadgen import ROUTES


@dataclass(frozen=True)
class Plan:
    """How much of everything a mode runs (see the module docstring for the sizing)."""

    concurrencies: tuple[int, ...]
    batch_sizes: tuple[int, ...]
    routes: tuple[str, ...]
    duration_s: float  # measurement window per stage
    warmup_s: float  # per stage, before the window opens
    max_requests: int  # per stage; whichever of time and count runs out first stops it
    gap_s: float  # pause between stages so queues drain
    server_warmup_s: float
    st_texts: int
    st_batch_sizes: tuple[int, ...]
    bare_repeats: int
    idle_repeats: int
    naive_concurrency: int
    naive_routes: tuple[str, ...] = ("/embed",)
    prelaunch_naive: bool = False  # start it with the first server (it idles until its turn)


PLANS: dict[str, Plan] = {
    "quick": Plan(
        concurrencies=(1, 8),
        batch_sizes=(1, 8),
        routes=ROUTES,
        duration_s=1.2,
        warmup_s=0.25,
        max_requests=3000,
        gap_s=0.1,
        server_warmup_s=0.5,
        st_texts=32,
        st_batch_sizes=(8, 16, 32, 64, 128),
        bare_repeats=30,
        idle_repeats=10,
        naive_concurrency=8,
        prelaunch_naive=True,
    ),
    "full": Plan(
        concurrencies=(1, 8, 32, 128),
        batch_sizes=(1, 8),
        routes=ROUTES,
        duration_s=15.0,
        warmup_s=2.0,
        max_requests=100_000,
        gap_s=1.0,
        server_warmup_s=5.0,
        st_texts=768,
        st_batch_sizes=(8, 16, 32, 64, 128),
        bare_repeats=200,
        idle_repeats=100,
        naive_concurrency=32,
    ),
}


def parse_config(value: str) -> tuple[str, list[str]]:
    """`name=flags` -> (name, shlex-split flags); `default=` means no extra flags."""
    name, sep, flags = value.partition("=")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME=FLAGS, got `{value}`")
    return name.strip(), shlex.split(flags)


def plan_from(args: argparse.Namespace) -> Plan:
    plan = PLANS["quick" if args.quick else args.stages]
    overrides: dict[str, Any] = {}
    if args.concurrency:
        overrides["concurrencies"] = args.concurrency
    if args.batch_sizes:
        overrides["batch_sizes"] = args.batch_sizes
    if args.routes:
        overrides["routes"] = args.routes
    if args.duration:
        overrides["duration_s"] = args.duration
    if args.naive_concurrency:
        overrides["naive_concurrency"] = args.naive_concurrency
    return replace(plan, **overrides)


def int_list(value: str) -> tuple[int, ...]:
    """`1,8,32` -> (1, 8, 32), for the --concurrency and --batch-sizes overrides."""
    return tuple(int(v) for v in value.split(",") if v.strip())
