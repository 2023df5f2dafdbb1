"""The listener's reconnect schedule: close together while an outage is young, then backing
off to the cap."""

from __future__ import annotations

import itertools
import random

from romancy_notify import NotifyConfig


def test_reconnect_attempts_stay_close_at_first_then_back_off_to_the_cap() -> None:
    config = NotifyConfig(reconnect_initial=0.075, reconnect_fast_for=10.0, reconnect_max=5.0,
                          reconnect_jitter=0.2)
    delays = list(itertools.islice(config.reconnect_delays(random.Random(7)), 400))
    waited = list(itertools.accumulate(delays))
    early = [d for d, w in zip(delays, waited, strict=True) if w < 10.0]
    assert len(early) > 100 and all(0.06 <= d <= 0.09 for d in early)
    assert len(set(early)) > 50  # jittered: workers do not reconnect in lockstep
    assert max(delays) <= 5.0 * 1.2 and delays[-1] >= 5.0 * 0.8
    late = delays[len(early):]
    assert all(b >= a * 0.6 for a, b in itertools.pairwise(late))  # growing (within jitter)
