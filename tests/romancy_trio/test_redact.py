"""A database URL is never shown with its password: ``migrate`` prints where it applied the
migrations as ``user:***@host``, and a URL in an error message is redacted the same way."""

from __future__ import annotations

import os
import sys
import uuid
from urllib.parse import urlsplit

import pytest
import trio

from romancy_trio import ConfigurationError, open_app
from romancy_trio._redact import redact_url

from .conftest import Backend

SECRET = "s3cret-Pw"
MYSQL_USER = f"rt_redact_{uuid.uuid4().hex[:6]}"


def test_redact_url_hides_every_password_and_keeps_the_rest() -> None:
    cases = {
        "postgresql://root:pw@h1:5432,h2:5432/db?target_session_attrs=read-write":
            "postgresql://root:***@h1:5432,h2:5432/db?target_session_attrs=read-write",
        "mysql://app:p%40ss@127.0.0.1:3306/test?connect_timeout=3":
            "mysql://app:***@127.0.0.1:3306/test?connect_timeout=3",
        "postgresql://u:a@b@host/db": "postgresql://u:***@host/db",
        "postgresql://u@h/db?sslmode=require&password=pw": "postgresql://u@h/db?sslmode=require&password=***",
        "host=h port=5432 password='a b' dbname=x": "host=h port=5432 password=*** dbname=x",
        "mysql://root@127.0.0.1/test": "mysql://root@127.0.0.1/test",
        "sqlite:///var/lib/app.db": "sqlite:///var/lib/app.db",
    }
    for url, shown in cases.items():
        assert redact_url(url) == shown


def _with_password(url: str, user: str | None = None) -> str:
    """``url`` logging in as ``user`` (default: its own) with the password SECRET."""
    parts = urlsplit(url)
    login = user or parts.username or "root"
    netloc = f"{login}:{SECRET}@{parts.netloc.rpartition('@')[2]}"
    return parts._replace(netloc=netloc).geturl()


def _mysql_logins(backend: Backend, sql: str) -> None:
    import pymysql

    from romancy_trio.storage._mysql_conn import parse_url

    p = parse_url(backend.url)
    conn = pymysql.connect(host=p.host, port=p.port, user=p.user, password=p.password,
                           autocommit=True)
    try:
        with conn.cursor() as cur:
            for host in ("%", "localhost", "127.0.0.1"):
                for statement in sql.format(host=host, db=p.database).split(";"):
                    cur.execute(statement)
    finally:
        conn.close()


async def _migrate(url: str, schema: str) -> tuple[int, str, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = await trio.run_process(
        [sys.executable, "-m", "romancy_trio", "migrate", url, "--schema", schema],
        capture_stdout=True, capture_stderr=True, check=False, env=env)
    return proc.returncode, proc.stdout.decode(), proc.stderr.decode()


async def test_migrate_prints_the_url_without_its_password(backend: Backend) -> None:
    if backend.name == "sqlite":
        url = backend.url  # no login: shown as it is
    elif backend.name == "mysql":  # a login with a password, allowed the test's database
        url = _with_password(backend.url, MYSQL_USER)
        _mysql_logins(backend, f"CREATE USER '{MYSQL_USER}'@'{{host}}' IDENTIFIED BY "
                               f"'{SECRET}';GRANT ALL ON `{{db}}`.* TO '{MYSQL_USER}'@'{{host}}'")
    else:  # the test server trusts its clients: any password logs in
        url = _with_password(backend.url) if urlsplit(backend.url).password is None \
            else backend.url
    try:
        secret = urlsplit(url).password
        code, out, err = await _migrate(url, backend.config.schema)
        assert code == 0, err
        assert out.strip() == f"migrations applied to {redact_url(url)}"
        if secret is not None:
            assert ":***@" in out
            assert secret not in out + err
        async with open_app(url, config=backend.config, run_workers=False) as app:
            assert await app.list_instances() == []  # it did migrate that database
    finally:
        if backend.name == "mysql":
            _mysql_logins(backend, f"DROP USER IF EXISTS '{MYSQL_USER}'@'{{host}}'")


@pytest.mark.parametrize("url", [
    f"mysql://app:{SECRET}@127.0.0.1:3306/",  # no database
    f"mysql://app:{SECRET}@127.0.0.1:3306/db?sslmode=on",  # unknown parameter
    f"postgresql://app:{SECRET}@h1,h2/db",  # several hosts, none required to be the primary
    f"postgresql://app:{SECRET}@h:99999/db",  # not a port
    f"oracle://app:{SECRET}@h/db",  # unknown scheme
])
async def test_a_url_in_an_error_is_shown_without_its_password(url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        async with open_app(url, run_workers=False):
            pass
    assert SECRET not in str(caught.value)
    assert "app:***@" in str(caught.value)
    code, out, err = await _migrate(url, "romancy")
    assert code == 2 and err.startswith("error:")
    assert SECRET not in out + err and "app:***@" in err


def test_values_holding_a_url_do_not_show_its_password() -> None:
    from romancy_notify import NotifyConfig
    from romancy_trio.storage._hubs import HubPlan
    from romancy_trio.storage._mysql_url import parse_url

    params = parse_url(f"mysql://app:{SECRET}@127.0.0.1:3306/db")
    plan = HubPlan((), NotifyConfig(), f"postgresql://app:{SECRET}@h/db",
                   f"postgresql://app:{SECRET}@direct/db")
    for value in (params, plan):
        assert SECRET not in repr(value)
    assert params.password == SECRET  # still there for the driver
