"""docker/ cannot run here (no Docker engine), so check that its files agree with the code: the
commands and modules compose.yaml names exist, the files the Dockerfile copies exist, the
environment variables are the ones the code reads, and the demo app module starts."""

from __future__ import annotations

import inspect
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import psycopg
import pytest

from romancy_trio.asgi import _serve
from tests._paths import PYTHONPATH
from tests.pgcluster import StandbyPair

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
DOCKER = ROOT / "docker"
APP_SERVICES = ("migrate", "worker", "http")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    return data


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", (DOCKER / "Dockerfile").read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _argv(command: str | list[str]) -> list[str]:
    """The program's argv; ``sh -c SCRIPT`` is unwrapped (``$$`` is compose's escaped ``$``)."""
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    if argv[:2] == ["sh", "-c"]:
        argv = shlex.split(argv[2].replace("$$", "$"))
    return argv[1:] if argv[0] == "exec" else argv


def _commands(compose: dict[str, Any]) -> dict[str, list[str]]:
    services = compose["services"]
    return {name: _argv(services[name]["command"]) for name in APP_SERVICES}


def _workdir_and_copies(dockerfile: list[tuple[str, str]]) -> list[tuple[str, str, str]]:
    """(source, destination, WORKDIR at that point) of every COPY."""
    workdir, out = "/", []
    for word, rest in dockerfile:
        if word == "WORKDIR":
            workdir = rest
        elif word == "COPY":
            parts = [p for p in shlex.split(rest) if not p.startswith("--")]
            for src in parts[:-1]:
                out.append((src, parts[-1], workdir))
    return out


def test_services_and_replicas(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *APP_SERVICES}
    assert services["postgres"]["image"] == "postgres:16"
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])
    assert services["worker"]["deploy"]["replicas"] == 3
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("worker", "http"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully")
    for name in APP_SERVICES:
        build = services[name]["build"]
        context = (DOCKER / build["context"]).resolve()
        assert context == ROOT
        assert (context / build["dockerfile"]).resolve() == DOCKER / "Dockerfile"
        assert services[name]["image"] == services["worker"]["image"]


def test_database_url_matches_postgres_service(compose: dict[str, Any]) -> None:
    services = compose["services"]
    pg_env = services["postgres"]["environment"]
    for name in APP_SERVICES:
        info = psycopg.conninfo.conninfo_to_dict(services[name]["environment"]["ROMANCY_TRIO_URL"])
        assert info["host"] == "postgres"
        assert (info["user"], info["password"], info["dbname"]) == (
            pg_env["POSTGRES_USER"], pg_env["POSTGRES_PASSWORD"], pg_env["POSTGRES_DB"])


def test_environment_names_are_the_ones_the_code_reads(compose: dict[str, Any]) -> None:
    read_by_http = set(re.findall(r"ROMANCY_TRIO_[A-Z_]+", inspect.getsource(_serve.app_from_env)))
    read_by_app = set(re.findall(r"ROMANCY_TRIO_[A-Z_]+", (DOCKER / "app.py").read_text()))
    services = compose["services"]
    assert "ROMANCY_TRIO_URL" in read_by_http and "ROMANCY_TRIO_URL" in read_by_app
    for name in APP_SERVICES:
        env = services[name]["environment"]
        romancy_names = {k for k in env if k.startswith("ROMANCY_TRIO_")}
        assert romancy_names <= read_by_http, romancy_names - read_by_http
        assert "ROMANCY_TRIO_URL" in env
        for arg in _commands(compose)[name]:
            for var in re.findall(r"\$\{?([A-Z_]+)", arg):
                assert var in env, f"{name} uses ${var}, which it does not set"


def test_commands_name_real_modules_and_entry_points(compose: dict[str, Any]) -> None:
    cmds = _commands(compose)
    assert cmds["migrate"][:4] == ["python", "-m", "romancy_trio", "migrate"]
    from romancy_trio.__main__ import main as romancy_main

    with pytest.raises(SystemExit) as exit_:
        romancy_main(["migrate", "--help"])
    assert exit_.value.code == 0

    http = cmds["http"]
    assert http[:4] == ["python", "-m", "romancy_trio", "serve"]  # a failed start exits 3
    with pytest.raises(SystemExit) as exit_:
        romancy_main(["serve", "--help"])
    assert exit_.value.code == 0
    assert http[http.index("--bind") + 1] == "0.0.0.0:8000"
    assert "127.0.0.1:8000:8000" in compose["services"]["http"]["ports"]
    assert compose["services"]["http"]["environment"]["ROMANCY_TRIO_WORKFLOWS"] == "app"

    assert cmds["worker"][:3] == ["python", "-m", "app"]


def test_dockerfile_copies_existing_files_and_runs_as_non_root(
    dockerfile: list[tuple[str, str]],
) -> None:
    assert dockerfile[0] == ("FROM", "python:3.11-slim")
    requires = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["requires-python"]
    assert requires == ">=3.11"
    copies = _workdir_and_copies(dockerfile)
    for src, _, _ in copies:
        assert (ROOT / src).exists(), f"COPY {src}: no such file in the build context"
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["hatch"]["build"][
        "targets"]["wheel"]["packages"]
    copied = {src.rstrip("/") for src, _, _ in copies}
    assert {p.split("/")[0] for p in packages} <= copied, "pip install . needs every package"
    assert {"pyproject.toml", "README.md"} <= copied
    assert ("RUN", "pip install '.[mysql]' && rm -rf /src") in dockerfile
    users = [rest for word, rest in dockerfile if word == "USER"]
    assert users and users[-1] not in ("root", "0")


def test_app_module_is_where_the_commands_look(
    dockerfile: list[tuple[str, str]], compose: dict[str, Any]
) -> None:
    """`python -m app` and ROMANCY_TRIO_WORKFLOWS=app need /app/app.py on the path."""
    (dest_dir,) = {wd for src, dest, wd in _workdir_and_copies(dockerfile)
                   if src == "docker/app.py" and dest in ("./app.py", "app.py")}
    env = " ".join(rest for word, rest in dockerfile if word == "ENV")
    assert f"PYTHONPATH={dest_dir}" in env
    workdirs = [rest for word, rest in dockerfile if word == "WORKDIR"]
    assert workdirs[-1] == dest_dir  # also the working directory of every command
    cmd = next(rest for word, rest in dockerfile if word == "CMD")
    assert _argv(json.loads(cmd)) == _commands(compose)["worker"]  # exec form: a JSON list


def _run_app(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(DOCKER), PYTHONPATH])}
    env.pop("ROMANCY_TRIO_URL", None)
    return subprocess.run([sys.executable, *args], cwd=DOCKER, env=env, capture_output=True,
                          text=True, timeout=60, check=False)


def test_app_module_runs_and_lists_its_workflows() -> None:
    helped = _run_app("-m", "app", "--help")
    assert helped.returncode == 0, helped.stderr
    assert "worker" in helped.stdout and "start" in helped.stdout
    listed = _run_app("-c", "import app; print(' '.join(w.name for w in app.WORKFLOWS))")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {"greet", "order"}
    unset = _run_app("-m", "app", "worker")
    assert unset.returncode != 0 and "ROMANCY_TRIO_URL" in unset.stderr


@pytest.mark.slow
def test_migrate_service_takes_a_multi_host_url(
    compose: dict[str, Any], pg_standby_pair: StandbyPair, tmp_path: Path
) -> None:
    """The `migrate` service's command as compose runs it (through ``sh -c``, with
    ``"$ROMANCY_TRIO_URL"`` quoted), given a multi-host URL that lists the standby first (a
    primary and its standby, see docker/README.md): the schema lands on the primary."""
    pair = pg_standby_pair
    url = (f"postgresql://postgres@127.0.0.1:{pair.standby.port},127.0.0.1:"
           f"{pair.primary.port}/postgres?target_session_attrs=read-write")
    bin_dir = tmp_path / "bin"  # `python` in the image is this interpreter here
    bin_dir.mkdir()
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python").chmod(0o755)
    argv = [part.replace("$$", "$") for part in compose["services"]["migrate"]["command"]]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=120, env={
        **os.environ, "PYTHONPATH": PYTHONPATH, "ROMANCY_TRIO_URL": url,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"})
    assert done.returncode == 0, done.stderr
    [(applied,)] = pair.primary.query("SELECT count(*) FROM romancy.schema_migrations")
    assert isinstance(applied, int) and applied > 0
