"""Code versions: which instances a worker may resume (`AppConfig.code_version`)."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

AUTO = "auto"
"""`AppConfig.code_version` that derives each workflow's version from its source."""


def derived_version(fn: Any) -> str:
    """A version of one workflow that changes whenever its function's source does (the
    compiled code where no source can be found)."""
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):  # defined where no source file is (e.g. exec)
        text = repr(fn.__code__.co_code) + repr(fn.__code__.co_consts)
    return "src-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def code_versions(registry: Any, config: Any) -> tuple[dict[str, str], list[str]]:
    """Per workflow the app knows: the version its new instances record (the configured
    ``code_version``; ``"auto"``: derived from that workflow's source; None: none, nothing
    recorded), and the ``'<name>|<version>'`` its worker resumes (that one and
    ``compatible_versions``; instances without a version are resumed by every worker)."""
    if config.code_version is None:
        return {}, [f"{name}|{v}" for name in registry.workflows
                    for v in config.compatible_versions]
    own = {name: (derived_version(wf.fn) if config.code_version == AUTO
                  else config.code_version)
           for name, wf in registry.workflows.items()}
    accepted = [f"{name}|{v}" for name, version in own.items()
                for v in dict.fromkeys((version, *config.compatible_versions))]
    return own, accepted


def check_version(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ValueError(f"{what} must be a non-empty string of at most 200 characters, "
                         f"not {value!r}")
    return value
