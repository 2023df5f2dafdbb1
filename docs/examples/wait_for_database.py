# tested on: sqlite, postgres, mysql
import trio

from romancy_trio import open_app


async def main() -> None:
    # e.g. a container started together with its database: keep trying to reach the server
    # for up to 60 s before giving up (without it, open_app raises StorageUnavailableError
    # at once when the server cannot be reached)
    async with open_app(wait_for_database=60) as app:
        print("the database is up; workflows:", app.workflows())
        # a real service would now serve: await trio.sleep_forever()

trio.run(main)
