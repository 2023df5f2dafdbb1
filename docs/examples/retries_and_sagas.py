# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import (ActivityContext, RetryPolicy, WorkflowContext, WorkflowFailedError,
                          activity, open_app, workflow)

attempts = {"n": 0}

@activity(retry=RetryPolicy(max_attempts=5, initial_interval=0.1, backoff_coefficient=2.0,
                            non_retryable=("ValueError",)))
async def reserve_seat(ctx: ActivityContext, flight: str) -> str:
    attempts["n"] += 1
    if attempts["n"] < 3:
        raise ConnectionError("airline API timed out")  # retried, durably
    return f"seat-on-{flight}"

@reserve_seat.compensation
async def release_seat(ctx: ActivityContext, flight: str, seat: str) -> None:
    print(f"compensating: released {seat}")

@activity(retry=RetryPolicy.no_retries())
async def book_hotel(ctx: ActivityContext, city: str) -> str:
    raise ValueError(f"no rooms in {city}")

@workflow
async def trip(ctx: WorkflowContext, plan: dict[str, str]) -> str:
    await reserve_seat(ctx, plan["flight"])
    await book_hotel(ctx, plan["city"])  # fails: the seat is released, newest first
    return "booked"

async def main() -> None:
    async with open_app() as app:
        try:
            await app.run(trip, {"flight": "LH400", "city": "Paris"}, timeout=30)
        except WorkflowFailedError as exc:
            # ValueError no rooms in Paris, from activity book_hotel (id book_hotel:1)
            print("failed as expected:", exc.error_type, exc.message,
                  f"from activity {exc.activity_name} (id {exc.activity_id})")

trio.run(main)
