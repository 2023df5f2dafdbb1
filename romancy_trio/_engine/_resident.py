"""Resident workflow states: resume without replay on the worker that suspended (issue #22).

When a run suspends (it waits for an event, a message, a timer), its live state - the
`WorkflowMachine` with the workflow's coroutine parked at the wait - is kept here instead of
being closed. When this worker claims the instance again, the run continues from that state:
it reads only the history rows written since it suspended (the wait's answer, if the sender
recorded it) and replays nothing, so a resume costs the same after 10 events as after 1,000.
Rendezvous placement already sends an instance back to the worker that ran it.

A kept state is used only if nothing else can have touched the run since: the claim's lease
epoch is exactly one more than the suspending lease's (no other worker held it in between,
even one that wrote nothing), the run number is the same (no continue-as-new), no cancel was
requested, and the new rows start exactly at the seq the suspension reserved and each answers
what the workflow waits for. Anything else - a history row it did not expect - drops the state
and the run replays from the full history, as without the cache. Bounded: at most
`MAX_STATES` states and an estimate of `MAX_BYTES` (`BYTES_PER_EVENT` per history event the
state has seen), least recently suspended evicted first; an evicted state is closed.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from .._replay import HistoryEvent, WorkflowMachine
from ..storage import Claimed

MAX_STATES = 1000
MAX_BYTES = 64 * 1024 * 1024
BYTES_PER_EVENT = 1024
"""The memory estimate of one history event in a live state (its decoded payload and the
machine's bookkeeping), generous for the small payloads of most steps."""


@dataclass(slots=True)
class Resident:
    machine: WorkflowMachine
    run_no: int
    epoch: int
    """The lease epoch the run suspended under."""
    seq: int
    """The seq the suspension reserved: the next history row, whoever writes it."""
    events: int
    """History events the state has seen (the memory estimate)."""
    suspended_at: float


@dataclass(slots=True)
class ResidentStatistics:
    kept: int
    hits: int
    misses: int
    invalidated: int
    evicted: int


class ResidentStates:
    """The LRU of live states of one worker, by instance id."""

    def __init__(self, *, max_states: int = MAX_STATES, max_bytes: int = MAX_BYTES) -> None:
        self._states: OrderedDict[str, Resident] = OrderedDict()
        self._max_states = max_states
        self._max_events = max(1, max_bytes // BYTES_PER_EVENT)
        self._events = 0
        self.hits = self.misses = self.invalidated = self.evicted = 0

    def __contains__(self, instance_id: object) -> bool:
        """Is a state of it kept (so a claim need not bring its history along)?"""
        return instance_id in self._states

    def keep(self, instance_id: str, state: Resident) -> None:
        """Keep a suspended run's state (closing any older one of the instance)."""
        self.drop(instance_id)
        if state.events > self._max_events:
            state.machine.close()
            return
        self._states[instance_id] = state
        self._events += state.events
        while len(self._states) > self._max_states or self._events > self._max_events:
            _, old = self._states.popitem(last=False)
            self._events -= old.events
            old.machine.close()
            self.evicted += 1

    def take(self, claimed: Claimed) -> Resident | None:
        """The state of the claimed run, if it may continue from it (see the module doc);
        the caller owns it now (it keeps or closes it). A state that may not is closed."""
        state = self._states.pop(claimed.lease.instance_id, None)
        if state is None:
            self.misses += 1
            return None
        self._events -= state.events
        if (claimed.lease.epoch != state.epoch + 1 or claimed.run_no != state.run_no
                or claimed.cancel_requested or claimed.fresh):
            self.invalidated += 1
            state.machine.close()
            return None
        return state

    def accept(self, state: Resident, new: list[HistoryEvent]) -> bool:
        """Feed the rows written since the suspension; False (state closed) if they are not
        exactly the answers the run waits for, from the reserved seq on."""
        expected = state.seq
        try:
            for event in new:
                if event.seq != expected:
                    raise ValueError(f"history row {event.seq}, expected {expected}")
                state.machine.resolve(event)
                expected += 1
        except (ValueError, RuntimeError):  # not what it waits for: replay instead
            self.invalidated += 1
            state.machine.close()
            return False
        self.hits += 1
        state.seq, state.events = expected, state.events + len(new)
        return True

    def drop(self, instance_id: str) -> None:
        if (state := self._states.pop(instance_id, None)) is not None:
            self._events -= state.events
            state.machine.close()

    def clear(self) -> None:
        for iid in list(self._states):
            self.drop(iid)

    def statistics(self) -> ResidentStatistics:
        return ResidentStatistics(len(self._states), self.hits, self.misses, self.invalidated,
                                  self.evicted)
