"""App-level defaults, provider settings and keys (process memory only), request fingerprints.

Keys are looked up when a call runs, in this process: from `set_app_defaults` or the
environment. They are never part of an activity's arguments or result, so never in history.
"""

from __future__ import annotations

import hashlib
import json
import os
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from romancy_trio import App

from ._types import LLMConfigError

PROVIDERS = ("openai", "openai_responses", "anthropic", "gemini")
_SAME_KEYS = {"openai_responses": "openai"}
"""Providers that use another's keys and base URL (unless given their own)."""

_ENV_KEYS = {
    "openai": ("OPENAI_API_KEY",),
    "openai_responses": ("OPENAI_API_KEY",),
    "anthropic": ("ANTHROPIC_API_KEY",),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
_ENV_URLS = {"openai": "OPENAI_BASE_URL", "openai_responses": "OPENAI_BASE_URL",
             "anthropic": "ANTHROPIC_BASE_URL",
             "gemini": "GEMINI_BASE_URL"}

DEFAULT_MAX_TOKENS = 1024
DEFAULT_TIMEOUT = 60.0


@dataclass(frozen=True, slots=True)
class Defaults:
    provider: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    timeout: float = DEFAULT_TIMEOUT
    api_keys: Mapping[str, str] = field(default_factory=dict, repr=False)
    base_urls: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Resolved:
    """What one call runs with: the request's own choices over the app's, over the environment."""

    provider: str
    model: str
    max_tokens: int
    temperature: float | None
    timeout: float
    api_key: str = field(repr=False)
    base_url: str | None


_by_worker: dict[str, tuple[weakref.ref[App], Defaults]] = {}


def set_app_defaults(app: App, *, provider: str | None = None, model: str | None = None,
                     max_tokens: int | None = None, temperature: float | None = None,
                     timeout: float = DEFAULT_TIMEOUT, api_key: str | None = None,
                     base_url: str | None = None, api_keys: Mapping[str, str] | None = None,
                     base_urls: Mapping[str, str] | None = None) -> None:
    """Defaults for every LLM call that ``app``'s worker runs (a call or a ``durable_call``
    definition may override provider, model, max_tokens and temperature).

    ``api_key`` / ``base_url`` apply to ``provider``; ``api_keys`` / ``base_urls`` name the
    provider (``{"anthropic": ...}``). Without a key here, the call reads ``OPENAI_API_KEY``,
    ``ANTHROPIC_API_KEY`` or ``GEMINI_API_KEY`` (``GOOGLE_API_KEY``); base URLs likewise from
    ``OPENAI_BASE_URL``, ``ANTHROPIC_BASE_URL``, ``GEMINI_BASE_URL``. Keys stay in this
    process's memory: they are never recorded, logged or shown in errors.
    """
    keys = dict(api_keys or {})
    urls = dict(base_urls or {})
    for name in (provider, *keys, *urls):
        if name is not None and name not in PROVIDERS:
            raise LLMConfigError(f"unknown LLM provider {name!r}: use one of {PROVIDERS}")
    if (api_key is not None or base_url is not None) and provider is None:
        raise LLMConfigError("api_key/base_url apply to the default provider: pass provider=...")
    if provider is not None and api_key is not None:
        keys[provider] = api_key
    if provider is not None and base_url is not None:
        urls[provider] = base_url
    check_numbers(max_tokens, temperature)
    _by_worker[app.worker_id] = (weakref.ref(app), Defaults(
        provider, model, max_tokens, temperature, float(timeout), keys, urls))


def app_of(worker_id: str) -> App | None:
    entry = _by_worker.get(worker_id)
    return None if entry is None else entry[0]()


def check_numbers(max_tokens: int | None, temperature: float | None) -> None:
    if max_tokens is not None and (isinstance(max_tokens, bool) or not isinstance(
            max_tokens, int) or max_tokens < 1):
        raise LLMConfigError(f"max_tokens must be a positive int, not {max_tokens!r}")
    if temperature is not None and (isinstance(temperature, bool) or not isinstance(
            temperature, int | float) or not 0 <= temperature <= 2):
        raise LLMConfigError(f"temperature must be a number in [0, 2], not {temperature!r}")


def resolve(worker_id: str, request: Mapping[str, Any]) -> Resolved:
    """The settings of one call, in the worker that runs it."""
    entry = _by_worker.get(worker_id)
    defaults = entry[1] if entry is not None else Defaults()
    provider = request.get("provider") or defaults.provider or os.environ.get(
        "ROMANCY_LLM_PROVIDER")
    if provider is None:
        raise LLMConfigError("no LLM provider: pass provider=... to the call or definition, "
                             "or llm.set_app_defaults(app, provider=...)")
    if provider not in PROVIDERS:
        raise LLMConfigError(f"unknown LLM provider {provider!r}: use one of {PROVIDERS}")
    model = request.get("model") or defaults.model or os.environ.get("ROMANCY_LLM_MODEL")
    if not model:
        raise LLMConfigError(f"no model for provider {provider!r}: pass model=... or "
                             "llm.set_app_defaults(app, model=...)")
    family = _SAME_KEYS.get(provider, provider)
    key = defaults.api_keys.get(provider) or defaults.api_keys.get(family) or next(
        (os.environ[v] for v in _ENV_KEYS[provider] if os.environ.get(v)), None)
    if not key:
        raise LLMConfigError(f"no API key for provider {provider!r}: set "
                             f"{' or '.join(_ENV_KEYS[provider])}, or "
                             "llm.set_app_defaults(app, api_key=...)")
    temperature = request.get("temperature")
    return Resolved(
        provider=provider, model=model,
        max_tokens=request.get("max_tokens") or defaults.max_tokens or DEFAULT_MAX_TOKENS,
        temperature=defaults.temperature if temperature is None else temperature,
        timeout=defaults.timeout, api_key=key,
        base_url=defaults.base_urls.get(provider) or defaults.base_urls.get(family)
        or os.environ.get(_ENV_URLS[provider]))


def fingerprint(request: Mapping[str, Any]) -> str:
    """sha256 of the request as the workflow built it (canonical JSON)."""
    text = json.dumps(request, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


def scrub(text: str, secret: str) -> str:
    """``text`` with every occurrence of the key replaced."""
    return text.replace(secret, "***") if secret else text
