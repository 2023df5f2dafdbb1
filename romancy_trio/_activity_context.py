"""What an activity receives: who calls it, and (transactional) a session in its transaction."""

from __future__ import annotations

from dataclasses import dataclass

from .storage import Session


@dataclass(frozen=True, slots=True)
class ActivityContext:
    """First argument of every ``@activity`` function.

    ``session`` runs SQL in the same transaction that records the activity's result, so the
    activity's database effects happen exactly once. It is ``None`` for ``transactional=False``.
    """

    instance_id: str
    workflow_name: str
    activity_id: str
    worker_id: str
    session: Session | None

    @property
    def db(self) -> Session:
        """The transaction's session; a clear error for non-transactional activities."""
        if self.session is None:
            raise RuntimeError(
                f"activity {self.activity_id!r} is transactional=False and has no session"
            )
        return self.session
