# tested on: sqlite, postgres, mysql
from datetime import UTC, datetime

import trio
from romancy_trio import WorkflowContext, open_app, workflow

@workflow
async def report(ctx: WorkflowContext, team: str) -> str:
    return f"report for {team} at {ctx.now():%H:%M:%S}"

async def main() -> None:
    async with open_app() as app:
        # every weekday at 07:30 in Berlin (kept across restarts; the same id updates it)
        await app.schedule(report, "sales", id="sales-morning", cron="30 7 * * 1-5",
                           timezone="Europe/Berlin", catchup="one")
        # and every 0.5 s from the next half second, every tick missed while down started
        await app.schedule(report, "ops", id="ops-fast", interval=0.5, catchup="all")
        while len(runs := [i for i in await app.list_instances(workflow="report")
                           if i.instance_id.startswith("ops-fast@")]) < 3:
            await trio.sleep(0.1)
        print(sorted(i.instance_id for i in runs)[:1])  # ops-fast@<tick time, UTC>
        await app.pause_schedule("ops-fast")
        await app.resume_schedule("ops-fast")  # ticks that passed while paused are skipped
        print([(s.schedule_id, s.next_tick_at > datetime.now(UTC))
               for s in await app.list_schedules()])
        await app.delete_schedule("ops-fast")

trio.run(main)
