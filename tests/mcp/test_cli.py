"""``python -m romancy_trio mcp``: clear errors, not tracebacks, when it cannot serve."""

from __future__ import annotations

import subprocess
import sys

from .conftest import CWD, server_env


def run(*code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", "\n".join(code)], capture_output=True,
                          text=True, cwd=CWD, env=server_env(), timeout=120, check=False)


def test_without_the_mcp_extra() -> None:
    done = run("import sys", "sys.modules['mcp'] = None  # as if not installed",
               "from romancy_trio.__main__ import main",
               "sys.exit(main(['mcp', '--url', 'sqlite:///:memory:']))")
    assert done.returncode == 2, done.stderr
    assert "pip install 'romancy-trio[mcp]'" in done.stderr
    assert "Traceback" not in done.stderr


def test_unknown_workflows_module_and_bad_url() -> None:
    done = run("import sys", "from romancy_trio.__main__ import main",
               "sys.exit(main(['mcp', '--url', 'sqlite:///:memory:', '--workflows', 'no.such']))")
    assert done.returncode == 2, done.stderr
    assert "cannot import workflows module 'no.such'" in done.stderr
    bad = run("import sys", "from romancy_trio.__main__ import main",
              "sys.exit(main(['mcp', '--url', 'mysqlx://nowhere']))")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.startswith("error:") and "Traceback" not in bad.stderr
