"""Fuzz the CloudEvents intake on a real hypercorn-trio server: 2,000+ generated requests, valid
and invalid, in structured, binary and batched mode (and duplicates of earlier ones), sent by
concurrent clients. No answer is a 5xx; every valid event is stored exactly once, with its data
exactly as sent; nothing of a rejected request is stored.

``ROMANCY_FUZZ_SEED`` replays one run (the seed is printed); ``ROMANCY_FUZZ_REQUESTS`` sets
the count (default 2,000).
"""

from __future__ import annotations

import base64
import json
import os
import random
import string
from dataclasses import dataclass, field
from typing import Any

import httpx
import trio

from .conftest import Backend, fetch
from .test_http import served

CE = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
MAX_BATCH = 20


@dataclass
class Case:
    """One request and what the server must make of it."""

    label: str
    headers: dict[str, str]
    body: bytes
    stored: dict[tuple[str, str], Any] = field(default_factory=dict)
    """(source, id) -> the stored data (``{"data": ...}`` or ``{"data_base64": ...}``) of every
    event a 202 stores; empty for a request that must be refused."""
    duplicate: bool = False
    """Resends events already stored: 202, nothing new."""
    status: int = 202
    """Expected status class: 202, or 400 (any 4xx) when refused."""


class Generator:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.n = 0
        self.valid: list[Case] = []

    # -- values ----------------------------------------------------------------------------

    def text(self, size: int = 12) -> str:
        alphabet = string.ascii_letters + string.digits + " -_/.:\u00e9\u4e2d\U0001f600"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(1, size)))

    def value(self, depth: int = 0) -> Any:
        kinds = ["int", "float", "str", "bool", "null", "nul", "bigint"]
        if depth < 3:
            kinds += ["list", "dict"]
        kind = self.rng.choice(kinds)
        if kind == "int":
            return self.rng.randint(-1000, 1000)
        if kind == "bigint":
            return self.rng.choice([-(2**63), 2**64 - 1, 2**53 + 1])
        if kind == "float":
            return self.rng.choice([0.5, -1.25, 1e300, 3.141592653589793])
        if kind == "str":
            return self.text()
        if kind == "nul":
            return "a\u0000b" + self.text(3)
        if kind == "bool":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        if kind == "list":
            return [self.value(depth + 1) for _ in range(self.rng.randint(0, 4))]
        return {self.text(6): self.value(depth + 1) for _ in range(self.rng.randint(0, 4))}

    def attrs(self) -> dict[str, Any]:
        self.n += 1
        attrs: dict[str, Any] = {"specversion": "1.0", "id": f"fz-{self.n}-{self.text(6)}",
                                 "source": f"/fuzz/{self.rng.randint(1, 5)}",
                                 "type": f"fuzz.{self.rng.choice(['a', 'b', 'c'])}"}
        if self.rng.random() < 0.3:
            attrs["subject"] = self.text(20)
        if self.rng.random() < 0.2:
            attrs["time"] = self.rng.choice(
                ["2024-05-01T12:00:00Z", "2024-05-01T12:00:00.123+02:00", "1999-12-31t23:59:59z"])
        if self.rng.random() < 0.2:
            attrs["ext" + self.rng.choice("xyz")] = self.rng.choice(
                [self.text(8), 7, -(2**31), True])
        return attrs

    def header_value(self, value: Any) -> str:
        """A binary-mode header value: percent-encoded, sometimes in quoted-string form
        (HTTP binding 3.1.3.2), with the quotes escaped as quoted-pairs."""
        text = str(value).lower() if isinstance(value, bool) else str(value)
        encoded = "".join(c if c.isascii() and c.isprintable() and c not in ' "%'
                          else "".join(f"%{b:02X}" for b in c.encode()) for c in text)
        if self.rng.random() < 0.3:
            inner = "".join("\\" + c if c in '\\"' or self.rng.random() < 0.05 else c
                            for c in encoded)
            return f'"{inner}"'
        return encoded

    # -- valid requests ------------------------------------------------------------------

    def structured(self) -> Case:
        attrs = self.attrs()
        if self.rng.random() < 0.2:
            raw = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(0, 40)))
            attrs["data_base64"] = base64.b64encode(raw).decode()
            data: Any = {"data_base64": attrs["data_base64"]}
        else:
            attrs["data"] = self.value()
            data = {"data": attrs["data"]}
            if attrs["data"] is None:
                del attrs["data"]
        body = json.dumps(attrs, ensure_ascii=self.rng.random() < 0.5).encode()
        return Case("structured", {"content-type": CE}, body,
                    {(attrs["source"], attrs["id"]): data})

    def binary(self) -> Case:
        attrs = self.attrs()
        headers = {f"ce-{key}": self.header_value(value) for key, value in attrs.items()}
        kind = self.rng.choice(["json", "octets", "text", "none"])
        data: Any
        if kind == "json":
            value = self.value()
            body = json.dumps(value).encode()
            headers["content-type"] = "application/json"
            data = {"data": value}
        elif kind in ("octets", "text"):
            body = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 40)))
            if kind == "text":
                body = self.text(30).encode()
            headers["content-type"] = "application/octet-stream" if kind == "octets" \
                else "text/plain; charset=utf-8"
            data = {"data_base64": base64.b64encode(body).decode()}
        else:
            body, data = b"", {"data": None}
        return Case("binary", headers, body, {(attrs["source"], attrs["id"]): data})

    def batch(self) -> Case:
        events, stored = [], {}
        for _ in range(self.rng.randint(0, 8)):
            attrs = self.attrs()
            attrs["data"] = self.value()
            events.append(attrs)
            stored[attrs["source"], attrs["id"]] = {"data": attrs["data"]}
        return Case("batch", {"content-type": BATCH}, json.dumps(events).encode(), stored)

    # -- invalid requests ----------------------------------------------------------------

    def invalid(self) -> Case:
        attrs = self.attrs()
        attrs["data"] = self.value()
        broken = dict(attrs)
        how = self.rng.choice([
            "no id", "empty source", "specversion", "time", "control", "long", "extension",
            "both data", "bad json", "not object", "big int", "int ext", "batch item",
            "batch size", "batch not array", "binary percent", "binary quote", "binary nul",
            "binary missing", "format", "ghost target",
        ])
        headers, body = {"content-type": CE}, b""
        if how == "no id":
            del broken["id"]
        elif how == "empty source":
            broken["source"] = ""
        elif how == "specversion":
            broken["specversion"] = self.rng.choice(["0.3", "1", 1.0])
        elif how == "time":
            broken["time"] = self.rng.choice(
                ["2024-05-01T12:00:00", "yesterday", "2024-13-01T00:00:00Z"])
        elif how == "control":
            bad = self.rng.choice(["\u0000", "\u0007", "\u007f", "\u0085"])
            broken["subject"] = f"a{bad}b"
        elif how == "long":
            broken[self.rng.choice(["id", "source", "type", "subject"])] = "x" * 1025
        elif how == "extension":
            broken[self.rng.choice(["Upper", "with-dash", "x" * 21, "under_score"])] = "v"
        elif how == "both data":
            broken["data"], broken["data_base64"] = self.text(), "AAAA"
        elif how == "int ext":
            broken["extbig"] = 2**31
        elif how == "ghost target":
            broken["romancyinstanceid"] = "no-such-instance"
        if how == "bad json":
            body = json.dumps(broken).encode()[: -self.rng.randint(1, 5)]
        elif how == "not object":
            body = json.dumps([broken] if self.rng.random() < 0.5 else "event").encode()
        elif how == "big int":
            big = self.rng.choice(["-9223372036854775809", "18446744073709551616"])
            body = json.dumps({**broken, "data": {"n": [1.5, "BIG"]}}).replace(
                '"BIG"', big).encode()
        elif how == "batch item":
            good = [self.attrs() for _ in range(self.rng.randint(1, 5))]
            bad_one = dict(self.attrs())
            bad_one["type"] = self.rng.choice(["", 5, None])
            if bad_one["type"] is None:
                del bad_one["type"]
            good.insert(self.rng.randint(0, len(good)), bad_one)
            headers, body = {"content-type": BATCH}, json.dumps(good).encode()
        elif how == "batch size":
            headers = {"content-type": BATCH}
            body = json.dumps([self.attrs() for _ in range(MAX_BATCH + 1)]).encode()
        elif how == "batch not array":
            headers, body = {"content-type": BATCH}, json.dumps(broken).encode()
        elif how.startswith("binary"):
            headers = {f"ce-{k}": self.header_value(v) for k, v in attrs.items() if k != "data"}
            headers["content-type"] = "application/json"
            body = json.dumps(attrs["data"]).encode()
            if how == "binary percent":
                headers["ce-subject"] = "%FF%FE"
            elif how == "binary quote":
                headers["ce-subject"] = '"a"b"'
            elif how == "binary nul":
                headers["ce-source"] = "/a%00b"
            else:
                del headers[self.rng.choice(["ce-id", "ce-source", "ce-type", "ce-specversion"])]
        elif how == "format":
            headers = {"content-type": "application/cloudevents+xml"}
            body = b"<event/>"
        if not body:
            body = json.dumps(broken).encode()
        return Case(f"invalid: {how}", headers, body, status=400)

    def case(self) -> Case:
        if self.rng.random() < 0.4:
            return self.invalid()
        case = self.rng.choice([self.structured, self.binary, self.batch])()
        self.valid.append(case)
        return case


@dataclass
class Tally:
    by_status: dict[int, int] = field(default_factory=dict)
    stored: dict[tuple[str, str], Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


async def send_all(client: httpx.AsyncClient, cases: list[Case], tally: Tally) -> None:
    queue = list(enumerate(cases))

    async def worker() -> None:
        while queue:
            index, case = queue.pop(0)
            r = await client.post("/", headers=case.headers, content=case.body)
            tally.by_status[r.status_code] = tally.by_status.get(r.status_code, 0) + 1
            ok = r.status_code == 202 if case.status == 202 else 400 <= r.status_code < 500
            if not ok:
                tally.failures.append(f"#{index} {case.label}: {r.status_code} {r.text[:300]}")
                continue
            if r.status_code != 202:
                continue
            receipts = r.json().get("receipts", [r.json()])
            if case.duplicate:
                if not all(x["duplicate"] for x in receipts):
                    tally.failures.append(f"#{index} {case.label}: not a duplicate {receipts}")
                continue
            if {(x["source"], x["id"]) for x in receipts} != set(case.stored) or any(
                x["duplicate"] for x in receipts
            ):
                tally.failures.append(f"#{index} {case.label}: receipts {receipts}")
            tally.stored.update(case.stored)

    # several clients at once, as a producer fleet would send
    async with trio.open_nursery() as nursery:
        for _ in range(6):
            nursery.start_soon(worker)


async def test_fuzzed_requests_no_5xx_valid_events_stored_exactly_once(backend: Backend) -> None:
    seed = int(os.environ.get("ROMANCY_FUZZ_SEED", random.randrange(2**32)))
    count = int(os.environ.get("ROMANCY_FUZZ_REQUESTS", 2000))
    print(f"fuzz seed {seed} ({count} requests): ROMANCY_FUZZ_SEED={seed} replays it")
    generator = Generator(random.Random(seed))
    cases = [generator.case() for _ in range(count * 93 // 100)]
    # then resend some valid requests (after the first round is stored): duplicates
    resent = [Case(f"duplicate of {c.label}", c.headers, c.body, duplicate=True)
              for c in generator.rng.sample(generator.valid, count - len(cases))]
    tally = Tally()
    async with served(backend, max_batch=MAX_BATCH) as (app, client):
        await send_all(client, cases, tally)
        await send_all(client, resent, tally)
        cases += resent
        rows = await fetch(app, "SELECT source, event_id, body FROM workflow_events")
    assert not tally.failures, f"seed {seed}: " + "\n".join(tally.failures[:20])
    assert not [s for s in tally.by_status if s >= 500], tally.by_status
    assert sum(tally.by_status.values()) == count
    stored = {(row[0], row[1]): json.loads(row[2]) for row in rows}
    assert len(rows) == len(stored) == len(tally.stored), (len(rows), len(tally.stored))
    assert set(stored) == set(tally.stored), f"seed {seed}"  # and nothing from a refusal
    for key, expected in tally.stored.items():
        body = stored[key]
        kept = {k: body[k] for k in ("data", "data_base64") if k in body}
        assert kept == expected, (seed, key, kept, expected)
    # the run exercised every kind, valid and refused
    labels = {c.label.split(":")[0] for c in cases}
    assert {"structured", "binary", "batch", "invalid"} <= labels
    assert tally.by_status.get(202, 0) > count // 3 and len(tally.by_status) > 1
