"""Every interval, batch and bound of the runtime, in one place."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class AppConfig:
    lease_ttl: float = 5.0
    """Seconds a worker's claim on an instance lasts without a heartbeat; a crashed worker's
    instances are taken over after at most about this long."""
    heartbeat_interval: float = 1.5
    """How often a worker renews all its leases (one UPDATE for all of them)."""
    claim_batch: int = 16
    """Most instances claimed by one query."""
    max_concurrent: int = 200
    """Most instances one worker runs at once."""
    fallback_interval: float = 30.0
    """Slow re-check for waiters in case a notification was lost."""
    pool_size: int = 10
    """PostgreSQL connections per worker."""
    schema: str = "romancy"
    """PostgreSQL schema holding the tables."""
    release_timeout: float = 2.0
    """On shutdown, how long to try to hand leases back before leaving them to expire."""

    def __post_init__(self) -> None:
        if self.heartbeat_interval * 2 >= self.lease_ttl:
            raise ValueError("heartbeat_interval must be less than half of lease_ttl")
        if self.claim_batch < 1 or self.max_concurrent < 1:
            raise ValueError("claim_batch and max_concurrent must be at least 1")
