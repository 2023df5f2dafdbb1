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

Placement of long-lived instances (ones that run without suspending, e.g. a consumer that
always finds a message): hashing only places an instance when it is woken, so such an instance
would stay wherever it was first claimed. Each announcement also carries the worker's *load*,
the number of long-lived instances it runs. `Peers.excess_targets` tells a worker running more
than its share (the total over the live workers, divided evenly, rounded up) which peers to
hand the excess to - each time the least loaded one that is still below that share - so the
loads end up within one of an even split. Only peers heard from recently (``fresh_within``)
count, so a worker that died is neither a target nor part of the share.

Packing (``AppConfig.placement="pack"``, issue #22): instead of spreading wake-ups, the live
workers agree on one order (rendezvous hashing of a key they share) and every wake-up goes to
the *taker*, the first worker in that order that does not say it is full; the first non-full
worker after it is the *standby*, which takes over when the taker dies: on PostgreSQL it
checks the taker's session and drops it from its view when it is gone (``_packing``);
elsewhere it hears the wake-ups too and claims those the taker left after
``peer_claim_delay``, as any worker does for a peer's wake-up. The others need not hear work
notifications at all (`Peers.hears_work`). A worker announces
itself full with ``*`` instead of ``+``. When every worker is full, the wake-ups are spread
as above and every worker hears them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

_FINGERPRINT_BYTES = 8
_FINGERPRINT_LEN = 2 * _FINGERPRINT_BYTES  # in hex


def fingerprint(workflows: Iterable[str], placement: str = "spread") -> str:
    """A short digest of the workflow names a worker runs (peers must run the same ones) and,
    unless it is the default, of its placement (peers must place the same way)."""
    names = sorted(workflows)
    if placement != "spread":
        names.append(f"\0placement={placement}")
    digest = hashlib.blake2b("\0".join(names).encode(), digest_size=_FINGERPRINT_BYTES)
    return digest.hexdigest()


def _score(worker_id: str, key: str) -> bytes:
    return hashlib.blake2b(f"{worker_id}\0{key}".encode(), digest_size=8).digest()


class Peers:
    """This worker's view of its live peers, fed by the members topic."""

    def __init__(self, worker_id: str, workflows: Iterable[str], *, expire_after: float,
                 placement: str = "spread") -> None:
        self.worker_id = worker_id
        self.fingerprint = fingerprint(workflows, placement)
        self.expire_after = expire_after
        self.pack = placement == "pack"
        self._self_full = False
        self._seen: dict[str, tuple[float, int]] = {}
        """peer (not this worker) -> (when last heard, its load then)"""
        self._full: set[str] = set()
        """peers whose last announcement said they were full"""
        self._rank = _score(worker_id, self.fingerprint)
        self._roles: tuple[str | None, str | None] | None = None  # cached (`roles`)
        self.standby_listens = True
        """Packing: whether the standby hears the work channel (to claim what a dead taker
        leaves); False where the standby checks the taker's session instead (PostgreSQL)."""

    @property
    def full(self) -> bool:
        """This worker's own state (packing): it takes no new work for now."""
        return self._self_full

    @full.setter
    def full(self, value: bool) -> None:
        self._self_full = value
        self._roles = None

    def announcement(self, *, joining: bool, load: int = 0) -> str:
        """The members-topic payload announcing (or withdrawing) this worker, with its load
        (long-lived instances it runs): ``+<fingerprint><load>|<worker id>`` (``*`` for
        ``+`` when it is full)."""
        sign = ("*" if self.pack and self.full else "+") if joining else "-"
        return f"{sign}{self.fingerprint}{load}|{self.worker_id}"

    def heard(self, payload: str, now: float) -> bool:
        """Record a members-topic payload; True if it announced a peer not known before (this
        worker should announce itself in return, so the newcomer learns of it at once)."""
        sign, fp, rest = payload[:1], payload[1:1 + _FINGERPRINT_LEN], payload[
            1 + _FINGERPRINT_LEN:]
        digits, bar, peer = rest.partition("|")
        if not bar or not digits.isdigit():
            digits, peer = "0", rest  # no load in it
        if fp != self.fingerprint or not peer or peer == self.worker_id:
            return False
        self._roles = None
        if sign == "-":
            self._seen.pop(peer, None)
            self._full.discard(peer)
            return False
        if sign == "*":
            self._full.add(peer)
        elif sign == "+":
            self._full.discard(peer)
        else:
            return False
        new = peer not in self._seen
        self._seen[peer] = (now, int(digits))
        return new

    def expire(self, now: float) -> None:
        """Forget peers not heard from for ``expire_after`` seconds (crashed, cut off)."""
        for peer, (at, _) in list(self._seen.items()):
            if now - at > self.expire_after:
                del self._seen[peer]
                self._full.discard(peer)
                self._roles = None

    def fresh(self, now: float, within: float) -> dict[str, int]:
        """The peers heard from in the last ``within`` seconds, with their loads."""
        return {p: load for p, (at, load) in self._seen.items() if now - at <= within}

    def excess_targets(self, load: int, now: float, *, fresh_within: float) -> list[str]:
        """The peers to hand long-lived instances to, one entry per instance (empty when this
        worker, running ``load`` of them, runs no more than its share)."""
        loads = self.fresh(now, fresh_within)
        share = -(-(load + sum(loads.values())) // (len(loads) + 1))  # rounded up
        targets: list[str] = []
        while load > share and loads:
            peer = min(loads, key=lambda p: (loads[p], p))
            if loads[peer] + 1 > share:
                break
            loads[peer] += 1
            load -= 1
            targets.append(peer)
        return targets

    @property
    def count(self) -> int:
        """Live workers in this group, this one included."""
        return len(self._seen) + 1

    def roles(self) -> tuple[str | None, str | None]:
        """Packing: (the taker, the standby) in this worker's view; (None, None) when every
        live worker is full, or when not packing."""
        if not self.pack:
            return None, None
        if self._roles is not None:
            return self._roles
        order = sorted([*self._seen, self.worker_id],
                       key=lambda w: (self._rank if w == self.worker_id
                                      else _score(w, self.fingerprint), w), reverse=True)
        free = [w for w in order if not (self.full if w == self.worker_id else w in self._full)]
        self._roles = (free[0] if free else None), (free[1] if len(free) > 1 else None)
        return self._roles

    def hears_work(self) -> bool:
        """Whether this worker needs the work notifications now: always, unless packing makes
        it neither the taker nor a listening standby."""
        taker, standby = self.roles()
        return taker is None or taker == self.worker_id or (
            standby == self.worker_id and self.standby_listens)

    def role(self) -> str:
        """Packing: ``"taker"``, ``"standby"``, ``"full"`` or ``"idle"`` in this worker's view;
        ``""`` when not packing."""
        if not self.pack:
            return ""
        if self.full:
            return "full"
        taker, standby = self.roles()
        return ("taker" if taker == self.worker_id else
                "standby" if standby == self.worker_id else "idle")

    def forget(self, peer: str) -> None:
        """Drop ``peer`` at once (found dead; if it lives, its next announcement adds it back)."""
        self._seen.pop(peer, None)
        self._full.discard(peer)
        self._roles = None

    def chooses_me(self, instance_id: str) -> bool:
        """True if this worker is the one to claim ``instance_id`` at once."""
        if not self._seen:
            return True
        if self.pack:
            taker, _ = self.roles()
            if taker is not None:
                return taker == self.worker_id
        mine = _score(self.worker_id, instance_id)
        return all(_score(peer, instance_id) <= mine for peer in self._seen)
