"""Which live worker claims a woken instance first: sans-IO membership and rendezvous hashing.

A write that wakes an instance names it in the work notification. Every worker receives that
notification, but only one of them - the worker that rendezvous hashing over the live workers
picks for that instance - claims at once; the others claim only if it is still unclaimed a
short delay later (the chosen worker died, or is full). So a wake-up costs one claim query,
not one per worker.

Workers announce themselves on the members topic (``+`` on start and every
``member_interval``, ``-`` on a clean stop); a worker not heard from for three intervals is
dropped. Only workers that run the same set of workflows count each other as peers, since a
peer that can't run an instance would never claim it. Nothing here is needed for correctness:
a stale view only costs the delay, never a lost wake-up.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_FINGERPRINT_BYTES = 8
_FINGERPRINT_LEN = 2 * _FINGERPRINT_BYTES  # in hex


def fingerprint(workflows: Iterable[str]) -> str:
    """A short digest of the workflow names a worker runs (peers must run the same ones)."""
    digest = hashlib.blake2b("\0".join(sorted(workflows)).encode(),
                             digest_size=_FINGERPRINT_BYTES)
    return digest.hexdigest()


def _score(worker_id: str, key: str) -> bytes:
    return hashlib.blake2b(f"{worker_id}\0{key}".encode(), digest_size=8).digest()


class Peers:
    """This worker's view of its live peers, fed by the members topic."""

    def __init__(self, worker_id: str, workflows: Iterable[str], *, expire_after: float) -> None:
        self.worker_id = worker_id
        self.fingerprint = fingerprint(workflows)
        self.expire_after = expire_after
        self._seen: dict[str, float] = {}  # peer -> when last heard (not this worker)

    def announcement(self, *, joining: bool) -> str:
        """The members-topic payload announcing (or withdrawing) this worker."""
        return f"{'+' if joining else '-'}{self.fingerprint}{self.worker_id}"

    def heard(self, payload: str, now: float) -> bool:
        """Record a members-topic payload; True if it announced a peer not known before (this
        worker should announce itself in return, so the newcomer learns of it at once)."""
        sign, fp, peer = payload[:1], payload[1:1 + _FINGERPRINT_LEN], payload[
            1 + _FINGERPRINT_LEN:]
        if fp != self.fingerprint or not peer or peer == self.worker_id:
            return False
        if sign == "-":
            self._seen.pop(peer, None)
            return False
        if sign != "+":
            return False
        new = peer not in self._seen
        self._seen[peer] = now
        return new

    def expire(self, now: float) -> None:
        """Forget peers not heard from for ``expire_after`` seconds (crashed, cut off)."""
        for peer, at in list(self._seen.items()):
            if now - at > self.expire_after:
                del self._seen[peer]

    @property
    def count(self) -> int:
        """Live workers in this group, this one included."""
        return len(self._seen) + 1

    def chooses_me(self, key: str) -> bool:
        """True if this worker is the one to claim instance ``key`` at once."""
        if not self._seen:
            return True
        mine = _score(self.worker_id, key)
        return all(_score(peer, key) <= mine for peer in self._seen)
