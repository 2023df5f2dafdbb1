"""LeaseReport: whatever a worker lost, one line - a warning after an outage, naming how long
it went without renewing against the lease; INFO otherwise; nothing when nothing happened."""

from __future__ import annotations

import logging

import pytest

from romancy_trio._engine._leases import SHOWN, LeaseReport
from romancy_trio._errors import StorageUnavailableError


def _records(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records
            if r.name == "romancy_trio.scheduler"]


def test_an_outage_that_cost_leases_is_one_warning(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    report = LeaseReport("w1", 5.0, now=100.0)
    for _ in range(3):
        report.failing(StorageUnavailableError("no answer within 5 s"))
    ids = [f"i{k}" for k in range(SHOWN + 2)]
    for iid in ids:
        report.lost(iid, "taken over")
    report.lost(ids[0], "write refused")  # the first word on an instance stays
    report.renewed(112.5)
    report.renewed(114.0)  # nothing new: silent
    lines = _records(caplog)
    assert [level for level, _ in lines] == [logging.WARNING, logging.WARNING]
    assert lines[0][1].startswith("lease renewal failed (no answer within 5 s)")
    said = lines[1][1]
    assert said.startswith("worker 'w1' reached the database again 12.5 s after its last "
                           "lease renewal (leases last 5 s): 7 instance(s)")
    assert "i0 (taken over)" in said and "and 2 more" in said and "i6" not in said


def test_without_an_outage(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    report = LeaseReport("w1", 5.0, now=0.0)
    report.renewed(1.5)
    assert _records(caplog) == []
    report.lost("a", "write refused")
    report.renewed(3.0)
    assert _records(caplog) == [(logging.INFO, "worker 'w1' no longer holds 1 instance(s) "
                                 "(another worker took them over; their writes were refused): "
                                 "a (write refused)")]
    caplog.clear()
    report.failing(StorageUnavailableError("x"))
    report.renewed(3.2)  # back at once, nothing lost
    assert _records(caplog)[-1] == (logging.WARNING, "worker session back after 0.20s")
    caplog.clear()
    report.renewed(10.0)  # a renewal that hung past the lease, then went through
    assert _records(caplog) == [(logging.WARNING, "worker session back after 6.80s")]
