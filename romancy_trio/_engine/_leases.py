"""What a worker says about leases it lost: one line, however many instances.

A worker whose link to the database is cut while it runs instances cannot renew their leases;
once they lapse, other workers take the instances over, and every write it attempts for them
is refused (fencing). When it reaches the database again it learns this for all of them at
once - from the renewal that no longer returns them, a refused write, or a run that gave up
waiting for the database - and says so in ONE line (a warning after an outage, naming how long
it went without renewing against the lease), not one per instance. Without an outage, the
instances lost between two renewals are one INFO line.
"""

from __future__ import annotations

import logging

log = logging.getLogger("romancy_trio.scheduler")

SHOWN = 5
"""Instance ids named in the line; the rest are counted."""


class LeaseReport:
    """Collects this worker's lost instances and renewal failures; `renewed` says it."""

    def __init__(self, worker_id: str, lease_ttl: float, now: float) -> None:
        self.worker_id = worker_id
        self.lease_ttl = lease_ttl
        self._last_renewal = now
        self._failing = False
        self._lost: dict[str, str] = {}
        """instance -> how: ``taken over`` (not returned by a renewal), ``write refused``
        (a fenced write), ``left to expire`` (its run gave up waiting for the database)"""

    def failing(self, exc: Exception) -> None:
        """A renewal failed: the first failure of an outage is logged."""
        if not self._failing:
            self._failing = True
            log.warning("lease renewal failed (%s); retrying (fenced writes keep ownership "
                        "safe)", exc)

    def lost(self, instance_id: str, how: str) -> None:
        self._lost.setdefault(instance_id, how)

    def renewed(self, now: float) -> None:
        """A renewal (or, holding no lease, the session check) succeeded: say in one line
        what was lost since the one before, and after an outage how long it lasted."""
        gap, self._last_renewal = now - self._last_renewal, now
        outage = self._failing or gap > self.lease_ttl  # (a renewal may hang, then succeed)
        self._failing = False
        lost, self._lost = self._lost, {}
        if not lost:
            if outage:
                log.warning("worker session back after %.2fs", gap)
            return
        ids = sorted(lost)
        named = ", ".join(f"{iid} ({lost[iid]})" for iid in ids[:SHOWN])
        if len(ids) > SHOWN:
            named += f" and {len(ids) - SHOWN} more"
        if outage:
            log.warning(
                "worker %r reached the database again %.1f s after its last lease renewal "
                "(leases last %g s): %d instance(s) it ran passed to other workers or back to "
                "the database: %s; nothing it did for them since was accepted (fenced)",
                self.worker_id, gap, self.lease_ttl, len(ids), named)
        else:
            log.info("worker %r no longer holds %d instance(s) (another worker took them over; "
                     "their writes were refused): %s", self.worker_id, len(ids), named)
