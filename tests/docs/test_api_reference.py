"""The API reference documents exactly the public surface: for every public module, the names
the built site's inventory (``objects.inv``, written by mkdocstrings) lists under it are the
names the module exports - for ``romancy_trio`` itself the set pinned by
tests/romancy_trio/test_public_api.py. And the errors page has an entry for every public error
class."""

from __future__ import annotations

import importlib
import pkgutil
import re
import zlib
from pathlib import Path

import pytest

import romancy_trio
from tests._paths import ROOT
from tests.romancy_trio.test_public_api import EXPECTED, HOOK_NAMES

API_DIR = ROOT / "docs" / "api"
NOT_IN_THE_REFERENCE = {
    "romancy_trio.cli": "the command line is documented as commands (docs/operations/cli.md); "
                        "its module's names serve the viewer, not users",
}
"""Public subpackages with an ``__all__`` that have no API page, and why."""


def documented_modules() -> dict[str, Path]:
    """Module name -> its API page, from the ``::: module`` directives."""
    found: dict[str, Path] = {}
    for page in sorted(API_DIR.glob("*.md")):
        for module in re.findall(r"^::: ([\w.]+)\s*$", page.read_text(), re.M):
            found[module] = page
    return found


def public_modules() -> set[str]:
    """``romancy_trio`` and each of its public submodules that declares ``__all__``."""
    names = {"romancy_trio"}
    for info in pkgutil.iter_modules(romancy_trio.__path__, "romancy_trio."):
        leaf = info.name.rsplit(".", 1)[1]
        if leaf.startswith("_") or leaf == "demo":
            continue
        if hasattr(importlib.import_module(info.name), "__all__"):
            names.add(info.name)
    return names


def inventory(site: Path) -> dict[str, str]:
    """Object name -> role (``py:class``, ``py:function``...) of what the site's objects.inv
    lists as rendered under that name (priority 1; aliases of objects rendered elsewhere, such
    as ``romancy_trio.otel.App``, have priority 2)."""
    raw = (site / "objects.inv").read_bytes()
    header_end = 0
    for _ in range(4):  # four '#' header lines, then zlib-compressed lines
        header_end = raw.index(b"\n", header_end) + 1
    entries: dict[str, str] = {}
    for line in zlib.decompress(raw[header_end:]).decode().splitlines():
        name, role, priority = line.split(" ", 3)[:3]
        if priority == "1":
            entries[name] = role
    return entries


def documented_names(entries: dict[str, str], module: str) -> set[str]:
    prefix = module + "."
    return {n[len(prefix):] for n, role in entries.items()
            if n.startswith(prefix) and "." not in n[len(prefix):] and role != "py:module"}


def test_every_public_module_has_an_api_page() -> None:
    pages = documented_modules()
    assert public_modules() - set(NOT_IN_THE_REFERENCE) == set(pages)
    index = (API_DIR / "index.md").read_text()
    assert all(f"({page.name})" in index for page in pages.values())


def test_the_facades_exports_are_what_the_public_api_test_pins() -> None:
    import romancy_trio.hooks
    import romancy_trio.testing

    assert set(romancy_trio.__all__) == EXPECTED
    assert set(romancy_trio.hooks.__all__) == HOOK_NAMES
    assert set(romancy_trio.testing.__all__) == {
        "ClockError", "Environment", "environment", "export_history", "replay"}


@pytest.mark.parametrize("module", sorted(documented_modules()))
def test_the_reference_documents_exactly_the_public_names(module: str,
                                                          built_site: Path) -> None:
    exported = EXPECTED if module == "romancy_trio" else set(
        importlib.import_module(module).__all__)
    documented = documented_names(inventory(built_site), module)
    assert exported - documented == set(), "public but not in the API reference"
    assert documented - exported == set(), "in the API reference but not public"


def test_the_errors_page_explains_every_public_error() -> None:
    errors_page = (ROOT / "docs" / "errors.md").read_text()
    classes = {name for name in romancy_trio.__all__
               if isinstance(getattr(romancy_trio, name), type)
               and issubclass(getattr(romancy_trio, name), BaseException)}
    from romancy_trio import llm

    classes |= {name for name in llm.__all__ if isinstance(getattr(llm, name), type)
                and issubclass(getattr(llm, name), BaseException)}
    assert len(classes) >= 30
    missing = {name for name in classes if f"| `{name}` |" not in errors_page}
    assert not missing, f"docs/errors.md has no row for {sorted(missing)}"
