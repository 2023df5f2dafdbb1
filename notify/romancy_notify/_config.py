"""The one configuration object of `notify`: every interval, bound and backoff lives here."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, fields

from ._link import LinkTimeouts

__all__ = ["NotifyConfig"]


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """Tuning for a notify hub. All durations are in seconds.

    - ``fallback_interval``: a `Watch.wait` with nothing received returns ``fallback=True``
      after about this long, so every waiter re-reads the database now and then even if every
      notification were lost.
    - ``fallback_jitter``: the fraction (0 <= j < 1) by which each fallback interval is drawn
      at random around ``fallback_interval`` (uniformly in ``[1 - j, 1 + j]`` times it), so
      that waiters started together do not poll together.
    - ``max_pending_keys``: at most this many distinct payloads are kept per watch between two
      waits; one more clears them and reports a gap (the caller rescans everything).
    - ``liveness_interval``: after this long without a notification, the PostgreSQL listener
      checks its connection with ``SELECT 1``.
    - ``reconnect_initial``: how far apart the listener's reconnect attempts are while an
      outage is young (a restarted server is found this long after it accepts connections,
      at most); ``reconnect_fast_for``: for how long (seconds of outage) they stay that close;
      after that the delay doubles up to ``reconnect_max`` (a long outage costs few attempts).
    - ``reconnect_jitter``: the fraction by which each reconnect delay is drawn at random
      (as for ``fallback_jitter``), so that many processes do not reconnect in lockstep.
    - ``probe_timeout``: how long the start-up self-probe waits for its own notification, and
      the bound on each liveness ``SELECT 1``.
    - ``link``: keepalives and ``tcp_user_timeout`` for the listener's connections (both
      ends; see `LinkTimeouts`), so a silently cut link is noticed in bounded time; None:
      the kernels' defaults, unless the DSN sets them.
    """

    fallback_interval: float = 30.0
    fallback_jitter: float = 0.2
    max_pending_keys: int = 1024
    liveness_interval: float = 10.0
    reconnect_initial: float = 0.075
    reconnect_fast_for: float = 10.0
    reconnect_max: float = 5.0
    reconnect_jitter: float = 0.2
    probe_timeout: float = 5.0
    link: LinkTimeouts | None = None

    def __post_init__(self) -> None:
        if self.link is not None and not isinstance(self.link, LinkTimeouts):
            raise TypeError(f"NotifyConfig.link must be a LinkTimeouts or None, not {self.link!r}")
        for f in fields(self):
            if f.name == "link":
                continue
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise TypeError(f"NotifyConfig.{f.name} must be a number, not {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"NotifyConfig.{f.name} must be finite and >= 0, not {value!r}")
        for name in (
            "fallback_interval",
            "liveness_interval",
            "reconnect_initial",
            "probe_timeout",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"NotifyConfig.{name} must be > 0")
        if not isinstance(self.max_pending_keys, int) or self.max_pending_keys < 1:
            raise ValueError("NotifyConfig.max_pending_keys must be an int >= 1")
        for name in ("fallback_jitter", "reconnect_jitter"):
            if getattr(self, name) >= 1:
                raise ValueError(f"NotifyConfig.{name} must be a fraction in [0, 1)")
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("NotifyConfig.reconnect_max must be >= reconnect_initial")

    def reconnect_delays(self, rng: random.Random) -> Iterator[float]:
        """The waits before each reconnect attempt of an outage (endless): jittered
        ``reconnect_initial`` apart for the first ``reconnect_fast_for`` s of waiting, so that a
        restarted server is found within about that much of accepting connections; then
        doubling up to ``reconnect_max``."""
        waited, delay = 0.0, self.reconnect_initial
        while True:
            drawn = delay * rng.uniform(1 - self.reconnect_jitter, 1 + self.reconnect_jitter)
            yield drawn
            waited += drawn
            if waited >= self.reconnect_fast_for:
                delay = min(delay * 2, self.reconnect_max)

    @property
    def longest_fallback(self) -> float:
        """The longest a `Watch.wait` with nothing received can last (the fallback interval
        drawn at its top, ``fallback_interval * (1 + fallback_jitter)``)."""
        return self.fallback_interval * (1 + self.fallback_jitter)
