"""Log records that say which instance, workflow and worker they are about.

The runtime's tasks carry that context (a context variable set where an app runs and where a
run of an instance runs; an activity's task inherits it). :class:`ContextFilter` copies it onto
each record as ``instance_id``, ``workflow`` and ``worker_id`` (empty strings outside any run or
app); :class:`JsonFormatter` writes one JSON object per record::

    handler = logging.StreamHandler()
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logging.getLogger("romancy_trio").addHandler(handler)
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime

FIELDS = ("instance_id", "workflow", "worker_id")

log_context: ContextVar[tuple[str, str, str]] = ContextVar(
    "romancy_trio_log_context", default=("", "", ""))
"""(instance_id, workflow, worker_id) of the task logging; set by the runtime."""


class ContextFilter(logging.Filter):
    """Adds ``instance_id``, ``workflow`` and ``worker_id`` to every record it sees (a value
    the record already has, e.g. from ``extra=``, is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        for name, value in zip(FIELDS, log_context.get(), strict=True):
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC, ISO 8601), level, logger, message, the context
    fields (use with :class:`ContextFilter`) and, if any, the exception's traceback."""

    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            **{name: getattr(record, name, "") for name in FIELDS},
        }
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


__all__ = ["ContextFilter", "JsonFormatter"]
