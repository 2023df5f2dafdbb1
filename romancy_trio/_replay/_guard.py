"""The determinism guard: catch clock, randomness and uuid calls made by workflow code itself.

While the machine steps a workflow coroutine (``send``/``throw``), a profile hook is installed on
the current thread only (``sys.setprofile``); it looks at every call and flags one of the
functions below when the *calling* frame is user code, i.e. not the standard library, not an
installed package and not this library - so ``logging.info`` (which reads the clock itself) or
a seeded ``random.Random(42)`` still work. The file of the workflow function itself always counts
as user code. The first flagged call raises :class:`WorkflowAPIError` at the call site; the
machine fails the workflow with it even if the workflow catches it.

The hook is removed when the step returns or raises, and whatever profiler was installed before
is restored (a Python-level one is also called for every event meanwhile). A C-level profiler
(``cProfile``) cannot be chained from Python: while one is active, the guard stands aside.
"""

from __future__ import annotations

import datetime as _dt
import os
import random
import secrets
import site
import sys
import sysconfig
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from types import BuiltinFunctionType, CodeType, FrameType
from typing import Any, TypeVar

from .._errors import WorkflowAPIError

T = TypeVar("T")

_NOW = "ctx.now() (the time of the latest recorded step)"
_RANDOM = "ctx.random() (a random.Random seeded per instance and run)"
_UUID = "ctx.uuid4()"
_BYTES = "ctx.random().randbytes(n) or ctx.uuid4()"

# C functions: (function, what the message calls it, the deterministic alternative)
_C_FORBIDDEN: dict[Any, tuple[str, str]] = {
    time.time: ("time.time()", _NOW),
    time.time_ns: ("time.time_ns()", _NOW),
    _dt.datetime.now: ("datetime.now()", _NOW),
    _dt.datetime.utcnow: ("datetime.utcnow()", _NOW),
    _dt.datetime.today: ("datetime.today()", _NOW),
    _dt.date.today: ("date.today()", _NOW),
    os.urandom: ("os.urandom()", _BYTES),
}
_GLOBAL_RNG: Any = getattr(random, "_inst", None)
for _name in ("random", "getrandbits"):
    if _GLOBAL_RNG is not None and isinstance(getattr(_GLOBAL_RNG, _name), BuiltinFunctionType):
        _C_FORBIDDEN[getattr(_GLOBAL_RNG, _name)] = (f"random.{_name}()", _RANDOM)

# Python functions, by code object: (name, alternative, is it a method of random.Random)
_PY_FORBIDDEN: dict[CodeType, tuple[str, str, bool]] = {}
for _name in ("uuid1", "uuid4", "uuid6", "uuid7"):
    if (_fn := getattr(uuid, _name, None)) is not None:
        _PY_FORBIDDEN[_fn.__code__] = (f"uuid.{_name}()", _UUID, False)
for _name in ("token_bytes", "token_hex", "token_urlsafe", "randbelow"):
    _PY_FORBIDDEN[getattr(secrets, _name).__code__] = (f"secrets.{_name}()", _BYTES, False)
for _cls in (random.Random, random.SystemRandom):
    for _name, _value in vars(_cls).items():
        _code = getattr(_value, "__code__", None)
        if isinstance(_code, CodeType) and not _name.startswith("__"):
            _PY_FORBIDDEN[_code] = (f"random.{_name}()", _RANDOM, True)


def _library_roots() -> tuple[str, ...]:
    roots = {sysconfig.get_paths()[k] for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    roots.update(site.getsitepackages())
    roots.add(site.getusersitepackages())
    roots.add(str(Path(__file__).resolve().parents[1]))  # romancy_trio
    for name in ("romancy_channels", "romancy_notify"):  # imported once the runtime runs
        mod_file = getattr(sys.modules.get(name), "__file__", None)
        if mod_file:
            roots.add(str(Path(mod_file).resolve().parent))
    return tuple(os.path.join(os.path.realpath(r), "") for r in roots if r)


_roots: tuple[str, ...] | None = None
_user_files: dict[str, bool] = {}


def _user_file(filename: str) -> bool:
    """Is code from this file user code (not the standard library, a package or ours)?"""
    global _roots
    known = _user_files.get(filename)
    if known is None:
        if filename.startswith("<"):
            known = not filename.startswith("<frozen")
        else:
            if _roots is None:
                _roots = _library_roots()
            known = not os.path.realpath(filename).startswith(_roots)
        _user_files[filename] = known
    return known


class DeterminismGuard:
    """One per workflow run. ``step(fn)`` calls ``fn()`` with the hook installed.

    ``workflow_file``: the file of the workflow function, user code wherever it is installed.
    """

    __slots__ = ("_user", "_workflow_file", "violation")

    def __init__(self, workflow_file: str | None = None) -> None:
        self._user: dict[CodeType, bool] = {}
        self._workflow_file = workflow_file
        self.violation: WorkflowAPIError | None = None
        """The first forbidden call seen (sticky: the run fails even if the workflow caught it)."""

    def step(self, fn: Callable[[], T]) -> T:
        previous = sys.getprofile()
        if previous is not None and not callable(previous):
            return fn()  # a C-level profiler we could neither chain nor restore
        sys.setprofile(self._hook if previous is None else self._chained(previous))
        try:
            return fn()
        finally:
            sys.setprofile(previous)

    def _chained(self, previous: Callable[..., Any]) -> Callable[..., Any]:
        hook = self._hook

        def both(frame: FrameType, event: str, arg: Any) -> None:
            previous(frame, event, arg)
            hook(frame, event, arg)

        return both

    def _hook(self, frame: FrameType, event: str, arg: Any) -> None:
        if event == "c_call":
            if (type(arg) is BuiltinFunctionType and arg in _C_FORBIDDEN
                    and self._is_user(frame.f_code)):
                self._violate(*_C_FORBIDDEN[arg])
        elif event == "call":
            found = _PY_FORBIDDEN.get(frame.f_code)
            if found is None:
                return
            name, alternative, is_method = found
            if is_method:
                rng = frame.f_locals.get("self")
                if isinstance(rng, random.SystemRandom):
                    name = f"SystemRandom.{name.split('.', 1)[1]}"
                elif rng is not _GLOBAL_RNG:
                    return  # a random.Random of the workflow's own, seeded by it
            caller = frame.f_back
            if caller is not None and self._is_user(caller.f_code):
                self._violate(name, alternative)

    def _is_user(self, code: CodeType) -> bool:
        known = self._user.get(code)
        if known is None:
            filename = code.co_filename
            known = filename == self._workflow_file or _user_file(filename)
            self._user[code] = known
        return known

    def _violate(self, name: str, alternative: str) -> None:
        if self.violation is None:
            self.violation = WorkflowAPIError(
                f"{name} was called in workflow code: its answer would differ when the workflow "
                f"is replayed. Use {alternative} instead, or call it in an activity. "
                "(To turn this check off: AppConfig(determinism_guard=False), or "
                "@workflow(determinism_guard=False) for one workflow.)")
        raise self.violation
