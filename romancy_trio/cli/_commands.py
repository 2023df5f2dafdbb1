"""The commands. Each opens the App without workers (``run_workers=False``): it reads and
writes the database, it runs no workflow."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import trio

import romancy_trio as rt

from ._timeline import row, timeline

Run = Callable[[argparse.Namespace], Awaitable[int]]
LIST_WINDOW = 1000
"""Instances read for ``list`` when filtering by time or id text (the newest first)."""


@asynccontextmanager
async def _app(args: argparse.Namespace) -> AsyncIterator[rt.App]:
    for module in getattr(args, "workflows", None) or ():
        try:
            importlib.import_module(module)
        except ImportError as exc:
            raise rt.ConfigurationError(f"cannot import workflows module {module!r}: {exc}"
                                        ) from None
    url = args.url or os.environ.get("ROMANCY_TRIO_URL")
    if not url:
        raise rt.ConfigurationError("no database: pass --url or set ROMANCY_TRIO_URL")
    async with rt.open_app(url, run_workers=False,
                           config=rt.AppConfig(schema=args.schema)) as app:
        yield app


def _out(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def _time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise rt.ConfigurationError(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.astimezone()


def summary(info: rt.InstanceInfo) -> dict[str, Any]:
    """One instance as ``list`` shows it."""
    return {"instance_id": info.instance_id, "workflow": info.workflow_name,
            "status": str(info.status), "run_no": info.run_no,
            "created_at": info.created_at.isoformat(), "updated_at": info.updated_at.isoformat()}


# -- list / show -----------------------------------------------------------------------------

def _list_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--status", choices=[s.value for s in rt.WorkflowStatus])
    p.add_argument("--workflow", help="only instances of this workflow")
    p.add_argument("--since", type=_time, help="created at or after (ISO 8601)")
    p.add_argument("--until", type=_time, help="created before (ISO 8601)")
    p.add_argument("--search", help="text the instance id contains")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="JSON instead of a table")


async def _list(args: argparse.Namespace) -> int:
    if not 1 <= args.limit <= LIST_WINDOW:
        raise rt.ConfigurationError(f"--limit must be between 1 and {LIST_WINDOW}")
    filtered = args.since or args.until or args.search
    async with _app(args) as app:
        infos = await app.list_instances(status=args.status, workflow=args.workflow,
                                         limit=LIST_WINDOW if filtered else args.limit)
    infos = [i for i in infos
             if (args.since is None or i.created_at >= args.since)
             and (args.until is None or i.created_at < args.until)
             and (args.search is None or args.search in i.instance_id)][:args.limit]
    rows = [summary(i) for i in infos]
    if args.json:
        _out(rows)
        return 0
    cols = ("instance_id", "workflow", "status", "run_no", "created_at")
    widths = [max([len(c)] + [len(str(r[c])) for r in rows]) for c in cols]
    for line in [dict(zip(cols, cols, strict=True)), *rows]:
        print("  ".join(str(line[c]).ljust(w) for c, w in zip(cols, widths, strict=True)))
    return 0


def _id_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance_id")


def _show_args(p: argparse.ArgumentParser) -> None:
    _id_args(p)
    p.add_argument("--json", action="store_true", help="JSON instead of text")


async def details(app: rt.App, instance_id: str) -> dict[str, Any]:
    """Everything ``show`` (and the viewer) tells about one instance."""
    info = await app.status(instance_id)
    runs = await app.runs(instance_id)
    rows = [row(e) for e in await app.history(instance_id)]
    started = next((r.started_at for r in runs if r.run_no == info.run_no),
                   info.created_at.timestamp())
    error = info.error
    return {
        **summary(info), "input": info.input, "result": info.result,
        "error": None if error is None else {
            "type": error.type, "message": error.message, "traceback": error.traceback,
            "activity_id": error.activity_id, "activity_name": error.activity_name,
            "attempts": error.attempts},
        "lease_holder": info.lease_owner, "lease_epoch": info.lease_epoch,
        "runs": [{"run_no": r.run_no, "continued_from": r.continued_from,
                  "started_at": r.started_at, "ended_at": r.ended_at} for r in runs],
        "started_at": started,
        "history": rows,
        "timeline": [s.json() for s in timeline(rows, started)],
    }


async def _show(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        d = await details(app, args.instance_id)
    if args.json:
        _out(d)
        return 0
    print(f"instance  {d['instance_id']}\nworkflow  {d['workflow']}\nstatus    {d['status']}")
    print(f"lease     {d['lease_holder'] or '-'} (epoch {d['lease_epoch']})")
    print("runs      " + " -> ".join(str(r["run_no"]) for r in d["runs"]))
    print(f"input     {json.dumps(d['input'], default=str)}")
    if d["status"] == "completed":
        print(f"result    {json.dumps(d['result'], default=str)}")
    if d["error"]:
        err = d["error"]
        print(f"error     {err['type']}: {err['message']}")
        if err["traceback"]:
            print("traceback\n" + "\n".join("  " + ln for ln in err["traceback"].splitlines()))
    print(f"timeline (run {d['run_no']}; seconds since it started)")
    for s in d["timeline"]:
        tries = f"  {len(s['attempts'])} failed attempt(s)" if s["attempts"] else ""
        mark = "ok" if s["ok"] else f"FAILED {s['error'] or ''}"
        print(f"  {s['start']:9.3f} -> {s['end']:9.3f}  ({s['end'] - s['start']:.3f}s)  "
              f"{s['kind']:<12} {s['key']}  {mark}{tries}")
    return 0


# -- poke ------------------------------------------------------------------------------------

async def _cancel(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        await app.cancel(args.instance_id)
    print(f"cancel requested for {args.instance_id}")
    return 0


async def _resume(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        activity_id = await app.resume(args.instance_id)
    print(f"resumed {args.instance_id} at activity {activity_id}: a worker runs it again")
    return 0


def _data(text: str | None, path: str | None) -> Any:
    if text is not None and path is not None:
        raise rt.ConfigurationError("give the data as an argument or with --file, not both")
    if path == "-" or (text is None and path is None):
        raw, where = sys.stdin.read(), "stdin"
    elif path is not None:
        try:
            with open(path, encoding="utf-8") as f:
                raw, where = f.read(), path
        except OSError as exc:
            raise rt.ConfigurationError(f"cannot read {path}: {exc.strerror}") from None
    else:
        raw, where = str(text), "the argument"
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise rt.ConfigurationError(f"data from {where} is not JSON: {exc}") from None


def _event_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("type", help="CloudEvents type")
    p.add_argument("data", nargs="?", help="JSON data (else --file, else stdin)")
    p.add_argument("--file", help="read the JSON data from this file ('-': stdin)")
    p.add_argument("--source", default="romancy-trio-cli", help="CloudEvents source")
    p.add_argument("--id", help="CloudEvents id (default: a new uuid)")
    p.add_argument("--subject")
    p.add_argument("--dataschema")
    p.add_argument("--instance", help="deliver to this instance's inbox only")
    p.add_argument("--ext", action="append", default=[], metavar="NAME=VALUE",
                   help="extension attribute (repeatable)")


async def _send_event(args: argparse.Namespace) -> int:
    data = _data(args.data, args.file)
    ext = dict(e.partition("=")[::2] for e in args.ext)
    event = rt.Event(type=args.type, source=args.source, id=args.id or uuid.uuid4().hex,
                     data=data, subject=args.subject, dataschema=args.dataschema,
                     extensions=ext, target_instance_id=args.instance)
    async with _app(args) as app:
        receipt = await app.send_event(event)
    _out({"id": receipt.event_id, "source": receipt.source, "duplicate": receipt.duplicate,
          "delivered_to": list(receipt.delivered_to)})
    return 0


def _publish_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("channel")
    p.add_argument("data", nargs="?", help="JSON data (else --file, else stdin)")
    p.add_argument("--file", help="read the JSON data from this file ('-': stdin)")


async def _publish(args: argparse.Namespace) -> int:
    data = _data(args.data, args.file)
    async with _app(args) as app:
        message_id = await app.publish(args.channel, data)
    print(f"published message {message_id} to {args.channel}")
    return 0


# -- export / replay -------------------------------------------------------------------------

def _export_args(p: argparse.ArgumentParser) -> None:
    _id_args(p)
    p.add_argument("-o", "--output", help="write to this file (default: stdout)")


async def export(app: rt.App, instance_id: str) -> dict[str, Any]:
    """The current run's history with what replaying it needs (workflow, input, start)."""
    d = await details(app, instance_id)
    return {"format": "romancy-trio-history/1", "instance_id": instance_id,
            "workflow": d["workflow"], "run_no": d["run_no"], "input": d["input"],
            "started_at": d["started_at"], "history": d["history"]}


async def _export(args: argparse.Namespace) -> int:
    async with _app(args) as app:
        doc = await export(app, args.instance_id)
    text = json.dumps(doc, indent=2, default=str, ensure_ascii=False)
    if args.output:
        await trio.Path(args.output).write_text(text + "\n", encoding="utf-8")
    else:
        print(text)
    return 0


def _replay_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("instance_id", nargs="?", help="replay this instance's current run")
    p.add_argument("--file", help="replay a history written by 'export' instead")


async def _replay(args: argparse.Namespace) -> int:
    if (args.instance_id is None) == (args.file is None):
        raise rt.ConfigurationError("replay needs an instance id or --file, not both")
    async with _app(args) as app:
        if args.file is not None:
            doc = _data(None, args.file)
            if not isinstance(doc, dict) or "history" not in doc or "workflow" not in doc:
                raise rt.ConfigurationError(f"{args.file} is not a history from 'export'")
        else:
            doc = await export(app, args.instance_id)
        try:
            steps = app.replay(doc["workflow"], doc.get("input"), doc["history"],
                               started_at=float(doc.get("started_at") or 0.0))
        except rt.NonDeterminismError as exc:
            print(f"does NOT fit: {exc}")
            return 4
    print(f"fits: {doc['workflow']} replayed {steps} recorded step(s) with the current code")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--url", help="database URL (default: $ROMANCY_TRIO_URL)")
    p.add_argument("--schema", default="romancy", help="PostgreSQL schema (default: romancy)")
    p.add_argument("--workflows", action="append", default=[], metavar="MODULE",
                   help="import this module first (its workflows; repeatable)")


def _with_common(add: Callable[[argparse.ArgumentParser], None]
                 ) -> Callable[[argparse.ArgumentParser], None]:
    def both(p: argparse.ArgumentParser) -> None:
        add(p)
        _common(p)
    return both


COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Run]] = {
    "list": ("list instances (newest first)", _with_common(_list_args), _list),
    "show": ("status, input, result or error, timeline, runs, lease of one instance",
             _with_common(_show_args), _show),
    "cancel": ("cancel a live instance", _with_common(_id_args), _cancel),
    "resume": ("retry a failed instance from its last failed activity (recorded)",
               _with_common(_id_args), _resume),
    "send-event": ("send a CloudEvent", _with_common(_event_args), _send_event),
    "publish": ("publish a message on a channel", _with_common(_publish_args), _publish),
    "export": ("write an instance's history as JSON (for replay --file)",
               _with_common(_export_args), _export),
    "replay": ("replay a recorded history against the current code (no side effects); "
               "exit 4 if it no longer fits", _with_common(_replay_args), _replay),
}
"""name -> (help, add_arguments, run)."""
