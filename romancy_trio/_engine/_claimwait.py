"""Between two claims: which work notifications this worker acts on, and when (issue #22).

Every worker hears every work notification. One naming an instance that rendezvous hashing
(``_peers``) gives to another live worker, or that hands an instance to another worker
(placement), is left to that worker for ``peer_claim_delay``; only then does this worker
look. Looking used to be a full claim (and under a steady load every worker made one per
delay for the instances of the others); now it is one primary-key look-up of the instances
left at least a delay ago (`Store.any_unclaimed`), and a claim only if one of them is still
unclaimed (the chosen worker died, is full, or is slow). At most one look-up per delay: an
instance is looked at between one and two delays after it was left. A dead or full chosen
worker still costs only that; nothing is decided by the look-up but whether to claim now.

While the look-ups keep finding instances the chosen peers did not take (every worker is busy,
and claiming them here is what spreads the load), they are skipped for a growing number of
looks: a saturated worker claims as before. More than ``_NAMED_MAX`` instances left, or a
look-up the database does not answer: claim, as before.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from romancy_notify import Watch

from .. import _clock
from .._errors import StorageUnavailableError
from ..storage import hints
from ._peers import Peers
from ._stats import _Counters

DEADLINE_SLACK = 0.005
"""Claim this long after a deadline (a timer, a foreign lease's expiry) is due, so the database's
clock has passed it too; a claim that is still early only costs another look."""

_NAMED_MAX = 128
"""Most instances left to peers that a worker keeps track of; past that, it claims when the
oldest is due (a burst: worth spreading over the workers anyway)."""

_SKIP_MAX = 32
"""Most looks in a row that claim without a look-up (see `ClaimWaiter._still_unclaimed`)."""


class ClaimWaiter:
    """Waits of one worker's claim loop on its work watch."""

    def __init__(self, watch: Watch, peers: Peers, counters: _Counters, *,
                 peer_claim_delay: float, longest_fallback: float,
                 any_unclaimed: Callable[[Sequence[str]], Awaitable[bool]]) -> None:
        self.watch = watch
        self.peers = peers
        self.counters = counters
        self.peer_claim_delay = peer_claim_delay
        self.longest_fallback = longest_fallback
        self.any_unclaimed = any_unclaimed
        self._skip = self._backoff = 0
        self._left: dict[str, float] = {}  # instance left to a peer -> when to look at it
        self._deferred_at: float | None = None  # the next look
        self._waiting = False
        watch.set_quiet(self._quiet)

    def _quiet(self, payload: str) -> bool:
        """Take a wake-up left to a peer while a look is already due, without waking the
        claim loop (every worker hears every work notification: issue #22). Anything else
        wakes it."""
        if not self._waiting or self._deferred_at is None:
            return False
        if payload.startswith(hints.INSTANCE) or payload.startswith(hints.NEW):
            iid = payload[len(hints.INSTANCE):]  # (both prefixes are two characters)
            if self.peers.chooses_me(iid):
                return False
        elif (placed := hints.parse_placed(payload)) is not None and \
                placed[1] != self.peers.worker_id:
            iid = placed[0]
        else:
            return False
        self._defer(iid)
        return True

    async def until_claim_is_due(self, expiry_at: float | None) -> str | None:
        """Sleep until a notification this worker should act on at once, the next known
        deadline, or the hub's own jittered fallback re-check - whichever comes first.
        Returns the instance that woke it if a notification named one chosen for it.

        A notification naming only instances that another live worker is chosen to claim
        (see ``_peers``) is left to that worker for ``peer_claim_delay``; then this worker
        claims if one of them is still unclaimed (else it goes on waiting, see above). A
        new deadline only moves the next look earlier. The payload format is in ``storage.hints``.

        It returns within the hub's longest fallback wait at the latest, even if deadline
        hints keep arriving (each `Watch.wait` starts its fallback timer afresh): a waiting
        worker claims at least that often, and so learns of every deadline that was not
        announced to it (``WaitStore.deadline_hint_horizon``)."""
        self._left.clear()
        self._deferred_at = None
        self._waiting = True
        try:
            return await self._until_due(expiry_at)
        finally:
            self._waiting = False

    async def _until_due(self, expiry_at: float | None) -> str | None:
        left = self._left
        recheck_at = trio.current_time() + self.longest_fallback
        while True:
            deferred_at = self._deferred_at
            due = min(t for t in (expiry_at, deferred_at, recheck_at) if t is not None)
            timeout = max(due - trio.current_time(), 0.0)
            wakeup = await self.watch.wait(timeout=timeout)
            if not wakeup.keys:
                now = trio.current_time()
                deferred_at = self._deferred_at
                if not (wakeup.timed_out and deferred_at is not None and deferred_at <= now
                        and now < recheck_at and (expiry_at is None or now < expiry_at)):
                    return None  # a gap, the fallback or a deadline
                looked = [iid for iid, at in left.items() if at <= now]
                self._waiting = False  # what comes during the look-up is read after it
                try:  # (so one that names a looked-at instance again is not dropped below)
                    unclaimed = await self._still_unclaimed(looked,
                                                            overflow=len(left) > _NAMED_MAX)
                finally:
                    self._waiting = True
                if unclaimed:
                    return None  # a chosen peer did not take one (or no look-up): claim
                self.counters.peer_claimed += 1
                for iid in looked:
                    del left[iid]
                # the next look once the oldest left is due, but not sooner than a delay
                # from now: at most one look-up per delay, each instance looked at within
                # two delays
                self._deferred_at = None if not left else max(
                    next(iter(left.values())), now + self.peer_claim_delay)
                continue
            for key in wakeup.keys:
                if (placed := hints.parse_placed(key)) is not None:
                    if placed[1] == self.peers.worker_id:
                        return placed[0]
                    self._defer(placed[0])
                elif key.startswith(hints.INSTANCE) or key.startswith(hints.NEW):
                    iid = key[len(hints.INSTANCE):]
                    if self.peers.chooses_me(iid):
                        # a new instance has no history for the claim to bring along
                        return None if key.startswith(hints.NEW) else iid
                    self._defer(iid)
                elif (at := hints.parse_deadline(key)) is not None:
                    at = trio.current_time() + max(at - _clock.now(), 0.0) + DEADLINE_SLACK
                    expiry_at = at if expiry_at is None else min(expiry_at, at)
                else:
                    return None  # work for every worker

    def _defer(self, instance_id: str) -> None:
        self.counters.deferred += 1
        at = trio.current_time() + self.peer_claim_delay
        if len(self._left) <= _NAMED_MAX:  # one more than that: a burst; claim when it is due
            self._left.setdefault(instance_id, at)
        if self._deferred_at is None:
            self._deferred_at = at

    async def _still_unclaimed(self, looked: list[str], *, overflow: bool) -> bool:
        """Whether to claim now. While look-ups keep finding work the chosen peers did not
        take (they are all busy: claiming it here is what spreads the load), the next
        ``_skip`` looks claim without one, doubling up to ``_SKIP_MAX``: a saturated worker
        pays almost no look-ups, an idle one almost no claims."""
        if overflow or not looked:
            return True
        if self._skip:
            self._skip -= 1
            return True
        try:
            unclaimed = await self.any_unclaimed(looked)
        except StorageUnavailableError:
            return True  # the claim that follows meets the outage and rides it out
        self._backoff = min(max(1, 2 * self._backoff), _SKIP_MAX) if unclaimed else 0
        self._skip = self._backoff
        return unclaimed
