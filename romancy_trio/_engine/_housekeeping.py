"""A worker's housekeeping: expired events, consumed channel messages and (with
``AppConfig.instance_retention``) old finished instances and archived runs are deleted in
bounded batches now and then; suspended receivers are re-checked every fallback interval.
None of it touches the runs the scheduler holds; the scheduler's nursery owns these loops,
which ride out a database outage (`Outages`)."""

from __future__ import annotations

import logging
from functools import partial

import trio
import trio.lowlevel

from .. import _clock
from .._channels import ChannelService
from .._config import AppConfig
from ..storage import Store
from ._outages import Outages

log = logging.getLogger("romancy_trio.scheduler")


async def maintenance_loop(store: Store, channels: ChannelService, config: AppConfig,
                           outages: Outages) -> None:
    """Delete expired events, consumed messages and (with ``instance_retention``) old
    finished instances and archived runs, in bounded batches, now and then."""
    while True:
        await outages.ride_out("housekeeping", lambda: _maintain(store, channels, config))
        await trio.sleep(config.maintenance_interval)


async def _maintain(store: Store, channels: ChannelService, config: AppConfig) -> None:
    while await store.waits.cleanup(retention=config.event_retention) > 0:
        await trio.lowlevel.checkpoint()
    while await _cleanup_channels(store, channels, config) > 0:
        await trio.lowlevel.checkpoint()
    await _purge_old_instances(store, config)


async def _purge_old_instances(store: Store, config: AppConfig) -> None:
    retention, batch = config.instance_retention, config.retention_batch
    if retention is None:
        return
    before = _clock.now() - retention
    while await store.purge_finished(before=before, batch=batch) == batch:
        await trio.lowlevel.checkpoint()
    while await store.purge_runs(before=before, batch=batch) == batch:
        await trio.lowlevel.checkpoint()

async def channel_sweep_loop(channels: ChannelService, config: AppConfig,
                             outages: Outages) -> None:
    """Every fallback interval, re-check suspended receivers of recently published channels:
    a lost wake-up delays a message but never strands it."""
    since = _clock.now()
    while True:
        await trio.sleep(config.fallback_interval)
        started = _clock.now()
        woken = await outages.ride_out("channel sweep",
                                       partial(channels.sweep, since=since - 1.0))
        if woken:
            log.info("channel sweep woke %d receiver(s) a notification had missed", woken)
        since = started

async def _cleanup_channels(store: Store, channels: ChannelService, config: AppConfig) -> int:
    return await store.db.run_transaction(lambda tx: channels.engine.cleanup_tx(
        tx, now=_clock.now(), retention=config.channel_retention))
