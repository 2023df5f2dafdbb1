"""The placement task on its own (no database, Trio's virtual clock): a worker running more
than its share of long-lived instances marks exactly its excess for the least loaded peers,
once its view of the peers is stable, and then stops - no ping-pong."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import trio
import trio.testing

from romancy_trio._engine._peers import Peers
from romancy_trio._engine._placement import long_lived, place_long_lived
from romancy_trio.storage import Lease


@dataclass
class Entry:
    lease: Lease
    since: float
    lost: bool = False
    cancelling: bool = False
    handback: str | None = None


def test_only_the_excess_moves_and_then_nothing_more() -> None:
    async def main() -> None:
        me = Peers("me", ["wf"], expire_after=3.0)
        others = {n: Peers(n, ["wf"], expire_after=3.0) for n in ("p1", "p2")}
        entries = [Entry(Lease(f"i{n}", "me", 1), since=0.0) for n in range(6)]
        announced: list[int] = []

        async def announce() -> None:
            announced.append(len(long_lived(entries, 2.0)))

        async def peers_announce() -> None:  # each peer's load: what was handed to it
            while True:
                moved = Counter(e.handback for e in entries)
                for name, peer in others.items():
                    me.heard(peer.announcement(joining=True, load=moved[name]),
                             trio.current_time())
                await trio.sleep(0.5)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(peers_announce)
            nursery.start_soon(place_long_lived, me, lambda: entries, announce, 2.0, 1.0)
            await trio.sleep(60)
            nursery.cancel_scope.cancel()
        assert Counter(e.handback for e in entries) == {None: 2, "p1": 2, "p2": 2}
        assert announced == [6, 2]  # told its load when it became long-lived, and after

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
