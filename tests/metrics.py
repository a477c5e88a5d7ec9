"""Read Prometheus text the way a dashboard would: a sample summed over its other labels."""

from __future__ import annotations

import re

import requests

SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$")


def scrape(server) -> str:
    return requests.get(server.url + "/metrics", timeout=10).text


def total(text: str, name: str, **labels: str) -> float:
    """Sum of `name`'s samples whose labels include `labels` (other labels summed over)."""
    wanted = {f'{key}="{value}"' for key, value in labels.items()}
    result = 0.0
    for line in text.splitlines():
        match = SAMPLE.match(line)
        if match and match.group(1) == name:
            present = set((match.group(2) or "").split(","))
            if wanted <= present:
                result += float(match.group(3))
    return result


def delta(before: str, after: str, name: str, **labels: str) -> float:
    return total(after, name, **labels) - total(before, name, **labels)
