"""The transactional outbox: CloudEvents that commit with an activity, and the relayer that
delivers them over HTTP.

Inside a transactional activity::

    await ctx.send_event("order.shipped", {"order_id": oid})

writes the event in the activity's transaction (it exists if and only if the activity's effects
and result commit) and announces it on ``romancy_outbox``. A relayer - one per worker process,
any number of processes - claims due rows (``SKIP LOCKED`` on PostgreSQL), POSTs each as a
structured-mode CloudEvent and marks it delivered, or retries it with exponential backoff and,
after ``max_attempts``, marks it ``failed`` (kept for inspection: :func:`outbox_rows`). Delivery
is at least once; the event id is stable across retries, so receivers deduplicate by
``(source, id)``.
"""

from ._relayer import CONTENT_TYPE as CONTENT_TYPE
from ._relayer import WORKER_HEADER as WORKER_HEADER
from ._relayer import Relayer as Relayer
from ._relayer import RelayerConfig as RelayerConfig
from ._relayer import RelayerStatistics as RelayerStatistics
from ._relayer import run_relayer as run_relayer
from ._store import TOPIC_OUTBOX as TOPIC_OUTBOX
from ._store import OutboxRow as OutboxRow
from ._store import OutboxStatus as OutboxStatus
from ._store import default_event_id as default_event_id
from ._store import outbox_rows as outbox_rows

__all__ = [
    "CONTENT_TYPE",
    "TOPIC_OUTBOX",
    "WORKER_HEADER",
    "OutboxRow",
    "OutboxStatus",
    "Relayer",
    "RelayerConfig",
    "RelayerStatistics",
    "default_event_id",
    "outbox_rows",
    "run_relayer",
]
