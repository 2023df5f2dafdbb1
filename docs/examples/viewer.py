# tested on: sqlite, postgres, mysql
from functools import partial

import httpx
import trio

from romancy_trio import open_app
from romancy_trio.asgi import serve_http
from romancy_trio.viewer import viewer_app


async def main() -> None:
    async with open_app() as app, trio.open_nursery() as nursery:
        port = await nursery.start(partial(  # port=8000: http://127.0.0.1:8000/ui/
            serve_http, app, bearer_token="s3cret", port=0, mounts={"/ui": viewer_app(app)}))
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            browser = {"accept": "text/html"}  # a browser without its session cookie...
            print((await http.get("/ui/", headers=browser)).headers["location"])  # /login...
            page = await http.get("/ui/", headers={"authorization": "Bearer s3cret"})
            print(page.status_code, page.headers["content-type"])  # 200 text/html
        nursery.cancel_scope.cancel()

trio.run(main)
