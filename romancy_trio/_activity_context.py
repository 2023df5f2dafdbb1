"""What an activity receives: who calls it, and (transactional) a session in its transaction."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from .storage import Session

DEFAULT_EVENT_SOURCE = "romancy_trio://{workflow_name}"
"""The CloudEvents ``source`` of events sent without one (``{workflow_name}`` is filled in)."""


@dataclass(frozen=True, slots=True)
class ActivityContext:
    """First argument of every ``@activity`` function.

    ``session`` runs SQL in the same transaction that records the activity's result, so the
    activity's database effects happen exactly once. It is ``None`` for ``transactional=False``.
    Its placeholders are ``?`` / ``:name`` on every dialect; ``db.native`` takes the driver's.
    """

    instance_id: str
    workflow_name: str
    activity_id: str
    worker_id: str
    session: Session | None
    run_no: int | None = None
    """The workflow run this activity belongs to (None: looked up when needed)."""
    event_source: str = DEFAULT_EVENT_SOURCE
    """Default CloudEvents ``source`` for :meth:`send_event`."""
    outbox_topic: str | None = None
    """The NOTIFY topic announcing new outbox rows (None: ``romancy_outbox``)."""
    _sends: Iterator[int] = field(
        default_factory=lambda: itertools.count(1), init=False, repr=False, compare=False
    )

    @property
    def db(self) -> Session:
        """The transaction's session; a clear error for non-transactional activities."""
        if self.session is None:
            raise RuntimeError(
                f"activity {self.activity_id!r} is transactional=False and has no session"
            )
        return self.session

    async def send_event(
        self,
        type: str,
        data: Any = None,
        *,
        source: str | None = None,
        subject: str | None = None,
        event_id: str | None = None,
        extensions: Mapping[str, str | int | bool] | None = None,
    ) -> str:
        """Publish a CloudEvent through the transactional outbox; return its id.

        The event is written in this activity's transaction, so it is published if and only if
        the activity's effects and result commit; a relayer then delivers it at least once.
        Its id defaults to one derived from (instance, run, activity, n-th send here), the same
        on every retry, so receivers can deduplicate. ``data``: any JSON value (None: no data).
        """
        from .outbox._store import send_event_tx  # the outbox is loaded on first use

        n = next(self._sends)
        if self.session is None:
            raise RuntimeError(
                f"send_event needs a transactional activity: {self.activity_id!r} is "
                "transactional=False, so the event could not commit with its effects"
            )
        return await send_event_tx(
            self.session,
            instance_id=self.instance_id,
            activity_id=self.activity_id,
            run_no=self.run_no,
            n=n,
            type=type,
            data=data,
            source=source
            if source is not None
            else self.event_source.replace("{workflow_name}", self.workflow_name),
            subject=subject,
            event_id=event_id,
            extensions=extensions,
            now=time.time(),
            topic=self.outbox_topic,
        )
