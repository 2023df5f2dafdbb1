"""Competing takers in separate processes on separate connections; one of them SIGKILLed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
import trio

from romancy_channels import ChannelMode
from romancy_trio.storage._mysql import MysqlDatabase
from romancy_trio.storage._postgres import PostgresDatabase
from tests._paths import PYTHONPATH

from ._helpers import publish_many, subscribe
from .conftest import Env
from .taker_proc import TAKES_DDL

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
TOTAL = 2000


def start_taker(env: Env, name: str, hold_after: int | None = None) -> subprocess.Popen[str]:
    assert isinstance(env.db, PostgresDatabase | MysqlDatabase)
    dsn = env.db.params.url if isinstance(env.db, MysqlDatabase) else env.db.conninfo
    args = [dsn, env.db.schema, name, "jobs", str(TOTAL)]
    if hold_after is not None:
        args.append(str(hold_after))
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.romancy_channels.taker_proc", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": PYTHONPATH},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    return proc


async def read_line(proc: subprocess.Popen[str]) -> str:
    assert proc.stdout is not None
    stdout = proc.stdout
    with trio.fail_after(60):
        line = await trio.to_thread.run_sync(stdout.readline, abandon_on_cancel=True)
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"taker exited early (rc={proc.poll()}):\n{err}")
    return line.strip()


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


async def wait_exit(proc: subprocess.Popen[str]) -> str:
    """The taker's last line; it must exit cleanly."""
    line = await read_line(proc)
    with trio.fail_after(60):
        rc = await trio.to_thread.run_sync(proc.wait)
    assert rc == 0, proc.stderr.read() if proc.stderr else ""
    return line


def cleanup(procs: list[subprocess.Popen[str]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


async def prepare(env: Env) -> list[int]:
    async with env.tx() as tx:
        await tx.execute(TAKES_DDL)
    await subscribe(env, "jobs", "seed", ChannelMode.COMPETING)
    return await publish_many(env, "jobs", range(TOTAL), per_tx=500)


async def takes(env: Env) -> list[tuple[int, str]]:
    async with env.tx() as tx:
        rows = await tx.fetchall("SELECT message_id, taker FROM takes")
    return [(int(i), str(t)) for i, t in rows]


async def final_takes(env: Env) -> list[tuple[int, str]]:
    """The recorded takes, checked against the claims: committed together, or neither."""
    rows = await takes(env)
    async with env.tx() as tx:
        claims = await tx.fetchall(
            "SELECT id, claimed_by FROM channel_messages WHERE claimed_by IS NOT NULL"
        )
    assert sorted(rows) == sorted((int(i), str(t)) for i, t in claims)
    return rows


async def test_three_processes_take_each_message_exactly_once(server_env: Env) -> None:
    ids = await prepare(server_env)
    procs: list[subprocess.Popen[str]] = []
    try:
        procs = [start_taker(server_env, f"p{i}") for i in range(3)]
        for proc in procs:
            assert await read_line(proc) == "ready"
        for proc in procs:
            go(proc)
        for proc in procs:
            assert (await wait_exit(proc)).startswith("done ")
    finally:
        cleanup(procs)
    rows = await final_takes(server_env)
    assert sorted(i for i, _ in rows) == ids  # no loss, no duplicate
    per_taker = Counter(t for _, t in rows)
    assert len(per_taker) >= 2, per_taker  # the processes really competed


async def test_a_sigkilled_taker_keeps_its_committed_takes_and_loses_the_open_one(
    server_env: Env,
) -> None:
    ids = await prepare(server_env)
    procs: list[subprocess.Popen[str]] = []
    try:
        victim = start_taker(server_env, "victim", hold_after=150)
        others = [start_taker(server_env, f"p{i}") for i in range(2)]
        procs = [victim, *others]
        for proc in procs:
            assert await read_line(proc) == "ready"
        go(victim)
        held = await read_line(victim)
        assert held.startswith("holding ")
        held_id = int(held.split()[1])
        for proc in others:
            go(proc)
        with trio.fail_after(60):  # kill it midway through the others' work
            while len(await takes(server_env)) < TOTAL // 2:
                await trio.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        assert victim.wait(timeout=10) == -signal.SIGKILL
        for proc in others:
            assert (await wait_exit(proc)).startswith("done ")
    finally:
        cleanup(procs)
    rows = await final_takes(server_env)
    assert sorted(i for i, _ in rows) == ids  # the union of committed takes: all, once each
    by_id = dict(rows)
    assert Counter(by_id.values())["victim"] == 150  # its committed takes count
    assert by_id[held_id] != "victim"  # its open take rolled back and went to another
