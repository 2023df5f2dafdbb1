"""Real processes, real signals: Ctrl+C ends a running program quietly, and a program that
cannot start says why in one line and exits non-zero."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from tests._paths import PYTHONPATH
from tests.test_docs_examples import example, fresh_pg_url

ROOT = Path(__file__).resolve().parents[2]
WORKERS_EXAMPLE = example("many_workers").code
UNREACHABLE_PG = "postgresql://root@127.0.0.1:1/x"
UNREACHABLE_LINE = "error: PostgreSQL at 127.0.0.1:1 is unavailable: connection failed: "
BAD_SQLITE = "sqlite:////nonexistent/dir/x.db"

pytestmark = pytest.mark.slow
__all__ = ["fresh_pg_url"]  # a fixture, used by name


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ROMANCY_TRIO_")}
    return {**env, "PYTHONPATH": PYTHONPATH, **extra}


class Running:
    """A process in its own session (so a signal reaches its whole group, as Ctrl+C in a
    terminal does), with what it printed so far."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.out = b""
        self.err = b""

    @classmethod
    async def start(cls, argv: list[str], cwd: Path, env: dict[str, str]) -> Running:
        proc = await trio.lowlevel.open_process(
            argv, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True,
        )
        return cls(proc)

    async def wait_for(self, marker: bytes, *, stream: str = "out") -> None:
        pipe = self.proc.stdout if stream == "out" else self.proc.stderr
        assert pipe is not None
        with trio.fail_after(60):
            while marker not in (self.out if stream == "out" else self.err):
                chunk = await pipe.receive_some()
                if not chunk:
                    raise AssertionError(f"exited before {marker!r}: {self.text()}")
                if stream == "out":
                    self.out += chunk
                else:
                    self.err += chunk

    async def signal_and_wait(self, signum: int) -> int:
        os.killpg(self.proc.pid, signum)
        return await self.finish()

    async def finish(self) -> int:
        async def drain(name: str) -> None:
            pipe = self.proc.stdout if name == "out" else self.proc.stderr
            assert pipe is not None
            while chunk := await pipe.receive_some():
                setattr(self, name, getattr(self, name) + chunk)
            await pipe.aclose()

        with trio.fail_after(60):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(drain, "out")
                nursery.start_soon(drain, "err")
            return await self.proc.wait()

    def text(self) -> str:
        return (self.out + b"\n--- stderr ---\n" + self.err).decode(errors="replace")


def assert_plain_interrupt(code: int, stderr: str) -> None:
    """What Python does with Ctrl+C in a script: a KeyboardInterrupt traceback and death by
    SIGINT (shell status 130). Nothing more: no exception group, nothing ignored or logged."""
    assert code == -signal.SIGINT, stderr
    assert stderr.rstrip().splitlines()[-1] == "KeyboardInterrupt", stderr
    for noise in ("ExceptionGroup", "Exception ignored", "Error", "Warning"):
        assert noise not in stderr, stderr


# -- Ctrl+C on programs that use the library -------------------------------------------------


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_ctrl_c_on_the_docs_worker_example(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    (tmp_path / "workers.py").write_text(WORKERS_EXAMPLE)
    extra = {} if backend == "sqlite" else {"ROMANCY_TRIO_URL": request.getfixturevalue(
        "fresh_pg_url")}
    run = await Running.start([sys.executable, "workers.py", "--serve"], tmp_path, _env(**extra))
    await run.wait_for(b"serving; Ctrl+C stops this worker\n")
    code = await run.signal_and_wait(signal.SIGINT)
    assert b"[1, 5, 14, 30, 55]" in run.out, run.text()
    assert_plain_interrupt(code, run.err.decode())


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_ctrl_c_on_the_http_server_example(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = f"sqlite:///{tmp_path / 'http.db'}" if backend == "sqlite" else \
        request.getfixturevalue("fresh_pg_url")
    argv = [sys.executable, str(ROOT / "examples" / "http_server.py"), url, "0"]
    run = await Running.start(argv, tmp_path, _env())
    await run.wait_for(b"serving ")
    port = int(run.out.split(b"http://127.0.0.1:")[1].split()[0])
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        r = await client.post("/workflows/http_example_greet", json={"input": "ctrl-c"})
        r = await client.get(f"/instances/{r.json()['instance_id']}/result?timeout=20")
        assert r.json()["result"] == "hello, ctrl-c"
    code = await run.signal_and_wait(signal.SIGINT)
    stderr = run.err.decode()
    assert_plain_interrupt(code, "\n".join(  # hypercorn logs that it is serving: not noise
        line for line in stderr.splitlines() if "Running on http" not in line))


async def _healthy(port: int) -> None:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        with trio.fail_after(30):
            while True:
                try:
                    if (await client.get("/healthz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await trio.sleep(0.05)


def _bound_port(log: bytes) -> int:
    return int(log.split(b"Running on http://127.0.0.1:")[1].split()[0])


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_ctrl_c_on_hypercorn_serving_app_from_env(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "sqlite":
        env = _env(ROMANCY_TRIO_URL=f"sqlite:///{tmp_path / 'h.db'}")
    else:
        env = _env(ROMANCY_TRIO_URL=request.getfixturevalue("pg_dsn"),
                   ROMANCY_TRIO_SCHEMA=request.getfixturevalue("pg_schema"))
    argv = [sys.executable, "-m", "hypercorn", "-k", "trio", "--bind", "127.0.0.1:0",
            "romancy_trio.asgi:app_from_env()"]
    run = await Running.start(argv, tmp_path, env)
    await run.wait_for(b"Running on http://", stream="err")
    await run.wait_for(b"(CTRL + C to quit)", stream="err")
    await _healthy(_bound_port(run.err))
    code = await run.signal_and_wait(signal.SIGINT)
    assert code == 0, run.text()
    assert "Traceback" not in run.text() and "Error" not in run.text(), run.text()


# -- romancy-trio serve: hypercorn in one process, with an honest exit code --------------------


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_serve_stops_gracefully_on_a_signal(signum: int, tmp_path: Path) -> None:
    env = _env(ROMANCY_TRIO_URL=f"sqlite:///{tmp_path / 's.db'}",
               ROMANCY_TRIO_WORKFLOWS="examples.http_server")
    argv = [sys.executable, "-m", "romancy_trio", "serve", "--bind", "127.0.0.1:0"]
    run = await Running.start(argv, ROOT, env)
    await run.wait_for(b"(CTRL + C to quit)", stream="err")
    await _healthy(_bound_port(run.err))
    code = await run.signal_and_wait(signum)
    assert code == 0, run.text()
    assert "Traceback" not in run.text(), run.text()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ROMANCY_TRIO_URL": "sqlite:///s.db", "ROMANCY_TRIO_WORKFLOWS": "nosuch.workflows"},
         "error: the app did not start: ModuleNotFoundError: No module named 'nosuch'"),
        ({"ROMANCY_TRIO_URL": UNREACHABLE_PG},
         "error: the app did not start: StorageUnavailableError: PostgreSQL at 127.0.0.1:1 "
         "is unavailable: connection failed"),
    ],
    ids=["missing-workflow-module", "unreachable-database"],
)
async def test_serve_exits_non_zero_when_the_app_cannot_start(
    env: dict[str, str], message: str, tmp_path: Path
) -> None:
    argv = [sys.executable, "-m", "romancy_trio", "serve", "--bind", "127.0.0.1:0"]
    run = await Running.start(argv, tmp_path, _env(**env))
    code = await run.finish()
    assert code == 3, run.text()
    last = run.err.decode().rstrip().splitlines()[-1]
    assert last.startswith(message), run.text()
    assert "Traceback" not in run.text(), run.text()


# -- the command line: one error line, no traceback -------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["migrate", UNREACHABLE_PG], UNREACHABLE_LINE),
        (["migrate", BAD_SQLITE], "error: SQLite '/nonexistent/dir/x.db': cannot open: "),
        (["demo", "--url", UNREACHABLE_PG], UNREACHABLE_LINE),
        (["demo", "--url", BAD_SQLITE], "error: SQLite '/nonexistent/dir/x.db': cannot open: "),
        (["serve"], "error: set ROMANCY_TRIO_URL"),
    ],
    ids=["migrate-unreachable", "migrate-bad-path", "demo-unreachable", "demo-bad-path",
         "serve-no-url"],
)
def test_cli_says_what_failed_in_one_line(argv: list[str], message: str, tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "romancy_trio", *argv], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert done.stderr.count("\n") == 1 and done.stderr.startswith(message), done.stderr
    assert done.stdout == ""
