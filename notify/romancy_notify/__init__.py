"""notify: PostgreSQL LISTEN/NOTIFY (or in-process) fan-out that wakes local waiters on Trio.

Installed as the top-level package ``notify``. It imports nothing of ``channels`` or
``romancy_trio``.

Usage::

    async with open_pg_hub(dsn, ["romancy_work", "romancy_done"]) as hub:
        with hub.watch("romancy_done", instance_id) as w:
            while not await result_is_stored(instance_id):   # re-read the row
                await w.wait()

and on the writing side, inside the transaction that writes the row::

    await notify_tx(conn, "romancy_done", instance_id)      # sent by PostgreSQL on commit
    ...commit...
    hub.publish_local("romancy_done", instance_id)          # optional same-process fast path

The rules:

- **Hints, not delivery.** A notification only says "look again"; the row in the table is
  the delivery. A waiter always re-reads its row after any wakeup, and duplicate or spurious
  wakeups are harmless (the PostgreSQL hub also receives what `Hub.publish_local` delivered).
- **Register, check, wait.** `Hub.watch` registers at once, so the loop above cannot miss a
  notification that arrives between the check and `Watch.wait`.
- **Gap -> rescan.** ``Wakeup.gap`` means notifications may have been lost: the listener
  reconnected (reported after it LISTENs again), or a wildcard watch received more than
  ``max_pending_keys`` distinct payloads between two waits. The caller must rescan everything
  it cares about, not just ``Wakeup.keys``.
- **Fallback timer.** Every wait ends after ``fallback_interval`` (+/- ``fallback_jitter``)
  with ``fallback=True`` if nothing arrived, so a waiter re-checks the database now and then
  even if every notification were lost, the listener were down, or a sender forgot to notify.
- **Coalescing.** Between two waits a watch keeps a *set* of payloads: a burst is one wakeup,
  and memory per watch is bounded. PostgreSQL itself folds duplicate ``(channel, payload)``
  NOTIFYs within one transaction. Every transaction that has sent NOTIFY takes a global lock
  at commit (to queue its notifications in order), which serializes notifying commits across
  the whole cluster. So: payloads are small keys (an instance id, never data; the limit is
  7999 bytes); notify each distinct key once per transaction; and the claim loop watches a
  whole topic (``key=None``) so that writers of work can send one constant payload (e.g. the
  queue name) per transaction, and a batch of starts in one transaction sends one NOTIFY, not
  one per instance.
- **Muting.** ``hub.set_heard(topic, False)`` stops hearing a busy topic for a while (its
  PostgreSQL channel is UNLISTENed soon, by the listener task; aliases stay heard;
  `Hub.publish_local` still delivers); ``set_heard(topic, True)`` LISTENs again and then
  reports a gap to that topic's watches. Cheap, coalescing, kept across reconnects; a local
  hub only records it.
- **Structured.** `open_local_hub` / `open_pg_hub` are async context managers that own the
  hub's tasks and return only once it is listening (LISTEN done, self-probe passed). Leaving
  the block cancels them; waits on its watches then raise `HubClosed`.
"""

from ._config import NotifyConfig as NotifyConfig
from ._hub import Hub as Hub
from ._hub import HubClosed as HubClosed
from ._hub import HubStatistics as HubStatistics
from ._hub import NotifyError as NotifyError
from ._hub import Watch as Watch
from ._hub import WatchClosed as WatchClosed
from ._link import LinkTimeouts as LinkTimeouts
from ._local_source import open_local_hub as open_local_hub
from ._pg_source import ListenProbeFailed as ListenProbeFailed
from ._pg_source import check_notification as check_notification
from ._pg_source import notify_tx as notify_tx
from ._pg_source import open_pg_hub as open_pg_hub
from ._registry import Wakeup as Wakeup

__all__ = [
    "Hub",
    "HubClosed",
    "HubStatistics",
    "LinkTimeouts",
    "ListenProbeFailed",
    "NotifyConfig",
    "NotifyError",
    "Wakeup",
    "Watch",
    "WatchClosed",
    "check_notification",
    "notify_tx",
    "open_local_hub",
    "open_pg_hub",
]
