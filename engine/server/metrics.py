"""``/metrics``: the engine's figures in the Prometheus text format (prometheus-client), read live at each scrape.

Nothing is counted twice: a collector reads the switchboard, pacer, delivery and guard figures when scraped
(:meth:`~engine.server.guard.Guard.snapshot`) and names them ``ipcc_<part>_<figure>``; figures kept per
application or per response code become one metric with an ``app`` or ``code`` label. Seconds stay seconds
(``ipcc_pacer_p99_lateness_s``); booleans are 0/1. Each server has its own registry (no global state).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LABELS = {"answers": "code", "refusals": "code", "calls_ended": "reason"}  # the others: per application
_PART_LABELS = {"workers": "worker"}  # every figure of these parts is per media worker
_UNSAFE = re.compile(r"[^a-zA-Z0-9_]")

#: ``snapshot()``: (part, {figure: number | bool | {key: number} | other}) pairs; other values are skipped.
Snapshot = Callable[[], Iterable[tuple[str, dict[str, Any]]]]


class EngineCollector(Collector):
    """A Prometheus collector over ``snapshot``."""

    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """One gauge per figure of the snapshot."""
        for part, figures in self._snapshot():
            for figure, value in figures.items():
                name = _UNSAFE.sub("_", f"ipcc_{part}_{figure}")
                if isinstance(value, bool | int | float):
                    yield GaugeMetricFamily(name, f"{part}: {figure}", value=float(value))
                elif isinstance(value, dict):
                    label = _PART_LABELS.get(part) or _LABELS.get(figure, "app")
                    family = GaugeMetricFamily(name, f"{part}: {figure} by {label}", labels=[label])
                    for key, number in value.items():
                        if isinstance(number, int | float):
                            family.add_metric([str(key)], float(number))
                    yield family


def registry_for(snapshot: Snapshot) -> CollectorRegistry:
    """A fresh registry holding one :class:`EngineCollector` over ``snapshot``."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(EngineCollector(snapshot))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """The registry in the Prometheus text format."""
    return generate_latest(registry)
