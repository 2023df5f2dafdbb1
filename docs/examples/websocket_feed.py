# tested on: sqlite, postgres, mysql
import trio
from romancy_trio import open_app
from romancy_trio.asgi import serve_http
from romancy_trio.client import subscribe

async def main() -> None:
    async with open_app() as app, trio.open_nursery() as nursery:
        port = await nursery.start(serve_http, app)
        url = f"ws://127.0.0.1:{port}/channels/ws"
        async with subscribe(url, ["prices"]) as feed:  # reconnects and resumes by itself
            await app.publish_many("prices", [{"eur": 101}, {"eur": 102}])
            async for message in feed:
                print(message.id, message.channel, message.data)
                if message.data["eur"] == 102:
                    break
            print("resume later with after =", feed.positions)
        nursery.cancel_scope.cancel()

trio.run(main)
