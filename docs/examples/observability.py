# tested on: sqlite, postgres, mysql
import logging
import sys
from collections import Counter

import trio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

from romancy_trio import (ActivityContext, Hooks, RetryPolicy, WorkflowContext, activity,
                          open_app, sleep, workflow)
from romancy_trio.hooks import ActivityRetried
from romancy_trio.logs import ContextFilter, JsonFormatter
from romancy_trio.otel import OpenTelemetryHooks

provider = TracerProvider()
provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
trace.set_tracer_provider(provider)

handler = logging.StreamHandler(sys.stdout)
handler.addFilter(ContextFilter())
handler.setFormatter(JsonFormatter())
log = logging.getLogger("shop")
log.addHandler(handler)
log.setLevel(logging.INFO)
tries: Counter[str] = Counter()

class RetryAlerts(Hooks):
    async def on_activity_retried(self, event: ActivityRetried) -> None:
        print(f"{event.activity} attempt {event.attempt} failed ({event.message}); retrying")

@activity(retry=RetryPolicy(max_attempts=3, initial_interval=0.1))
async def reserve(ctx: ActivityContext, item: str) -> str:
    tries[ctx.instance_id] += 1
    log.info("reserving %s, try %d", item, tries[ctx.instance_id])
    if tries[ctx.instance_id] == 1:
        raise ConnectionError("warehouse busy")
    return f"reserved {item}"

@workflow
async def order(ctx: WorkflowContext, item: str) -> str:
    booking = await reserve(ctx, item)
    await sleep(ctx, 0.2)
    return booking

async def main() -> None:
    async with open_app(hooks=[OpenTelemetryHooks(), RetryAlerts()]) as app:
        with trace.get_tracer("shop").start_as_current_span("checkout request"):
            iid = await app.start(order, "book")
        print(await app.result(iid, timeout=30))
    provider.shutdown()

trio.run(main)
