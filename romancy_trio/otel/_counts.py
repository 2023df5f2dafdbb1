"""Counters kept in this process and read by observable counters at each collection.

The SDK's synchronous ``Counter.add`` costs about 10 us a call (it hashes the attributes,
takes locks and aggregates per call), several times per workflow. Here adding is a dict
update; the SDK reads the totals (cumulative, monotonic) when a reader collects, and exports
the same data a ``Counter`` would: a monotonic sum per attribute set.

An observable instrument registered twice under one name keeps the first callbacks (the SDK
returns the existing one), so the counters are made once per meter provider and shared by
every `OpenTelemetryHooks` on it.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import Any

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, MeterProvider, Observation

MAX_SETS = 2000
"""Distinct attribute sets per counter (the SDK's default cardinality limit); past it, counts
go to the set ``{"otel.metric.overflow": True}``, as the SDK does."""

_OVERFLOW: tuple[str, ...] = ()
"""The key of the overflow set (no counter's attribute set is empty)."""


class Totals:
    """A monotonic count per attribute set (given as the values of ``keys``, in order)."""

    __slots__ = ("counts", "keys")

    def __init__(self, keys: tuple[str, ...]) -> None:
        self.keys = keys
        self.counts: dict[tuple[str, ...], int] = {}

    def add(self, *values: str) -> None:
        counts = self.counts
        n = counts.get(values)
        if n is None:
            if len(counts) >= MAX_SETS:
                values = _OVERFLOW
            n = counts.get(values, 0)
        counts[values] = n + 1

    def observe(self, options: CallbackOptions) -> Iterable[Observation]:
        # the reader's thread: one copy (a single C call, not interleaved with the Trio
        # thread's updates under the GIL) and no iteration over the live dict
        snapshot = self.counts.copy()
        return [Observation(n, {"otel.metric.overflow": True} if key == _OVERFLOW
                            else dict(zip(self.keys, key, strict=True)))
                for key, n in snapshot.items()]


class Counters:
    """The counting instruments of `OpenTelemetryHooks` on one meter provider."""

    def __init__(self, meter: metrics.Meter) -> None:
        def counter(name: str, description: str, *keys: str) -> Totals:
            totals = Totals(keys)
            meter.create_observable_counter(name, [totals.observe], description=description)
            return totals

        self.starts = counter("romancy.workflow.starts", "Workflow instances started",
                              "workflow")
        self.ends = counter("romancy.workflow.ends", "Workflow instances ended, by status",
                            "workflow", "status")
        self.attempts = counter("romancy.activity.attempts", "Activity attempts, by outcome",
                                "workflow", "activity", "outcome")
        self.lease_losses = counter("romancy.lease.losses", "Claims this worker lost to another",
                                    "workflow")
        self.messages = counter("romancy.channel.messages",
                                "Channel messages published and received", "channel",
                                "direction")
        self.events = counter("romancy.events.received", "Events recorded in instance histories",
                              "type")


_BY_PROVIDER: weakref.WeakKeyDictionary[Any, Counters] = weakref.WeakKeyDictionary()
_GLOBAL: list[Counters] = []
"""The counters on the global meter provider."""


def counters(scope: str, provider: MeterProvider | None) -> Counters:
    """The counters on ``provider`` (None: the global provider's)."""
    if provider is None or provider is metrics.get_meter_provider():
        if not _GLOBAL:  # made through the API's proxy: they follow a provider set later
            known = _BY_PROVIDER.get(metrics.get_meter_provider())
            _GLOBAL.append(known or Counters(metrics.get_meter(scope)))
        return _GLOBAL[0]
    found = _BY_PROVIDER.get(provider)
    if found is None:
        found = _BY_PROVIDER[provider] = Counters(metrics.get_meter(scope,
                                                                    meter_provider=provider))
    return found
