"""PNG plots like TEI's README: throughput and p50/p99 latency against concurrency.

Why a module of its own: matplotlib is a `bench` extra, imported only here, so the rest
of the harness (and its unit tests) never needs it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any


def plot(results: Mapping[str, Any], out_dir: Path) -> list[Path]:
    """Throughput and p50/p99 latency vs clients, one line per server and route.

    One panel per texts-per-request, like TEI's README plots; the ST baseline is a
    dashed horizontal line, the naive server a marker at its concurrency.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    name = results["name"]
    batch_sizes = sorted({s["batch_size"] for srv in results["servers"] for s in srv["stages"]})
    if not batch_sizes:
        return []
    paths = []
    for metric in ("throughput", "latency"):
        fig, axes = plt.subplots(
            1, len(batch_sizes), figsize=(6 * len(batch_sizes), 4.5), squeeze=False
        )
        for ax, bs in zip(axes[0], batch_sizes):
            for i, server in enumerate(results["servers"]):
                routes = sorted({s["route"] for s in server["stages"]})
                for j, route in enumerate(routes):
                    stages = sorted(
                        (
                            s
                            for s in server["stages"]
                            if s["batch_size"] == bs and s["route"] == route
                        ),
                        key=lambda s: s["concurrency"],
                    )
                    if not stages:
                        continue
                    x = [s["concurrency"] for s in stages]
                    measured = [s["requests_ok"] > 0 for s in stages]
                    label = f"{server['label']} {route}"
                    color = f"C{(i * 2 + j) % 10}"
                    style = "o-" if len(x) > 1 else "X"
                    if metric == "throughput":
                        y = [
                            s["tokens_per_s"] if ok else math.nan for s, ok in zip(stages, measured)
                        ]
                        ax.plot(
                            x,
                            y,
                            style,
                            color=color,
                            label=label,
                            markersize=8 if len(x) == 1 else 5,
                        )
                    else:
                        p50 = [math.nan if s["p50_ms"] is None else s["p50_ms"] for s in stages]
                        p99 = [math.nan if s["p99_ms"] is None else s["p99_ms"] for s in stages]
                        ax.plot(x, p50, style, color=color, label=f"{label} p50")
                        ax.plot(
                            x,
                            p99,
                            style.replace("-", "--"),
                            color=color,
                            alpha=0.7,
                            label=f"{label} p99",
                        )
            if metric == "throughput":
                best = results["baseline"]["st_best"]
                ax.axhline(
                    best["tokens_per_s"],
                    color="gray",
                    linestyle="--",
                    label=f"ST encode best (bs {best['batch_size']})",
                )
                ax.set_ylabel("tokens/s (real tokens)")
                ax.set_ylim(bottom=0)
            else:
                ax.set_ylabel("latency (ms)")
                ax.set_yscale("log")
            ax.set_xscale("log", base=2)
            ticks = sorted({s["concurrency"] for srv in results["servers"] for s in srv["stages"]})
            ax.set_xticks(ticks, [str(t) for t in ticks])
            ax.minorticks_off()
            ax.set_xlabel("concurrent clients")
            ax.set_title(f"{bs} text{'s' if bs > 1 else ''} per request")
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=7)
        fig.suptitle(
            f"{name}: {'throughput' if metric == 'throughput' else 'p50 / p99 latency'}"
            f" vs concurrency ({results['model'].get('name') or results['model']['id']})"
        )
        fig.tight_layout()
        path = out_dir / f"{name}_{metric}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths
