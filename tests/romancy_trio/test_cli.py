"""``romancy-trio`` operator commands, each run as a real subprocess (``python -m romancy_trio``)
against the database an in-process App works on (SQLite and PostgreSQL): list with filters and
JSON, show with traceback and timeline, send-event, publish, cancel, export + replay (fits, and
a changed history that does not), resume of a failed instance, and one-line errors."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import trio

import romancy_trio as rt

from . import cli_workflows as cw
from .conftest import Backend, fetch

MODULE = "tests.romancy_trio.cli_workflows"


async def cli(backend: Backend, *args: str, stdin: bytes = b"", url: bool = True
              ) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.pop("ROMANCY_TRIO_URL", None)
    where = ["--url", backend.url, "--schema", backend.config.schema] if url else []
    proc = await trio.run_process([sys.executable, "-m", "romancy_trio", *args, *where,
                                   "--workflows", MODULE],
                                  stdin=stdin, capture_stdout=True, capture_stderr=True,
                                  check=False, env=env)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


async def wait_status(app: rt.App, iid: str, status: rt.WorkflowStatus) -> None:
    with trio.fail_after(60):
        while (await app.status(iid)).status is not status:
            await trio.sleep(0.05)


async def test_operator_commands(backend: Backend, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    flag = tmp_path / "gateway-up"
    monkeypatch.setenv(cw.FLAG_ENV, str(flag))
    async with rt.open_app(backend.url, config=backend.config,
                           workflows=[cw.cli_order, cw.cli_wait, cw.cli_reserve,
                                      cw.cli_charge]) as app:
        await app.start(cw.cli_order, "o1", instance_id="fail-1")
        await app.start(cw.cli_wait, "o2", instance_id="wait-1")
        await app.start(cw.cli_wait, "o3", instance_id="wait-2")
        await wait_status(app, "fail-1", rt.WorkflowStatus.FAILED)
        for iid in ("wait-1", "wait-2"):
            await wait_status(app, iid, rt.WorkflowStatus.WAITING)

        code, out, err = await cli(backend, "list", "--json")
        assert code == 0, err
        assert {r["instance_id"]: r["status"] for r in json.loads(out)} == {
            "fail-1": "failed", "wait-1": "waiting", "wait-2": "waiting"}
        code, out, _ = await cli(backend, "list", "--status", "waiting", "--search", "-2")
        assert code == 0 and out.splitlines()[0].split()[:3] == ["instance_id", "workflow",
                                                                 "status"]
        assert [ln.split()[0] for ln in out.splitlines()[1:]] == ["wait-2"]
        code, out, err = await cli(backend, "list", "--since", "2999-01-01T00:00:00+00:00",
                                   "--json")
        assert (code, json.loads(out or "null")) == (0, []), err

        code, out, _ = await cli(backend, "show", "fail-1")
        assert code == 0, out
        assert "status    failed" in out and "ConnectionError: gateway down for o1" in out
        assert "Traceback (most recent call last)" in out  # the recorded traceback text
        assert "cli_reserve:1  ok" in out and "cli_charge:1  FAILED" in out
        assert "1 failed attempt(s)" in out  # two attempts: one retried, then the failure
        code, out, err = await cli(backend, "show", "wait-1", "--json")
        assert code == 0, err
        shown = json.loads(out)
        assert shown["lease_holder"] is None and [r["run_no"] for r in shown["runs"]] == [1]

        # send-event: the data from stdin, CloudEvents attributes as options
        code, out, err = await cli(backend, "send-event", "cli.go", "--instance", "wait-1",
                                   "--source", "ops", "--id", "e-1", "--subject", "s",
                                   stdin=b'{"approved": true}')
        assert code == 0, err
        assert json.loads(out) == {"id": "e-1", "source": "ops", "duplicate": False,
                                   "delivered_to": ["wait-1"]}
        with trio.fail_after(60):
            assert await app.result("wait-1") == {"approved": True}

        code, out, _ = await cli(backend, "publish", "cli-news", '{"n": 1}')
        assert code == 0 and out.startswith("published message ")

        # export + replay: fits; a history the code no longer takes does not
        export = tmp_path / "wait-1.json"
        code, _, err = await cli(backend, "export", "wait-1", "-o", str(export))
        assert code == 0, err
        code, out, _ = await cli(backend, "replay", "--file", str(export))
        assert code == 0 and out.startswith("fits: cli_wait replayed 2 recorded step(s)"), out
        code, out, _ = await cli(backend, "replay", "fail-1")
        assert code == 0 and "fits" in out, out
        doc = json.loads(export.read_text())
        doc["history"][0]["key"] = "cli_charge:1"  # as if the code had called another activity
        changed = tmp_path / "changed.json"
        changed.write_text(json.dumps(doc))
        code, out, _ = await cli(backend, "replay", "--file", str(changed))
        assert code == 4 and out.startswith("does NOT fit: ") and "cli_charge:1" in out, out

        # resume: the failed activity runs again, its failure stays recorded (retired)
        flag.touch()
        code, out, err = await cli(backend, "resume", "fail-1")
        assert code == 0 and "at activity cli_charge:1" in out, (out, err)
        with trio.fail_after(60):
            assert await app.result("fail-1") == {"reservation": "R-o1", "charged": 42}
        kinds = [str(e.kind) for e in await app.history("fail-1")]
        assert kinds == ["activity_completed", "activity_completed"]
        retired = await fetch(app, "SELECT kind FROM workflow_history WHERE instance_id = ? "
                                   "AND seq < 0 ORDER BY seq DESC", ("fail-1",))
        assert [r[0] for r in retired] == ["retired:attempt_failed", "retired:activity_failed"]
        code, _, err = await cli(backend, "resume", "fail-1")
        assert code == 1 and "is completed, not failed" in err

        code, out, _ = await cli(backend, "cancel", "wait-2")
        assert code == 0
        await wait_status(app, "wait-2", rt.WorkflowStatus.CANCELLED)

        # errors: one line, non-zero
        for args, expected in ((("cancel", "wait-2"), "already ended"),
                               (("show", "nope"), "no workflow instance with id 'nope'"),
                               (("send-event", "t", "{bad"), "is not JSON")):
            code, out, err = await cli(backend, *args)
            assert code != 0 and err.count("\n") == 1 and expected in err, (args, err)
    code, _, err = await cli(backend, "list", url=False)
    assert code == 2 and err == "error: no database: pass --url or set ROMANCY_TRIO_URL\n"


def test_help_lists_every_command() -> None:
    from romancy_trio.cli import COMMANDS

    assert set(COMMANDS) == {"list", "show", "cancel", "resume", "send-event", "publish",
                             "export", "replay"}
