"""ClientLimits, the gateway's per-client bound, called as ASGI (no Ray, no sockets): one address
holding `limit` requests gets 429 at once for the next, others and /healthz are untouched, and
a request's slot is given back when its response ends (also when it fails)."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from maskrt.serve.guard import ClientLimits


def app_and_gate():
    gate = asyncio.Event()

    async def slow(request):
        await gate.wait()
        return PlainTextResponse("done")

    async def broken(request):
        raise RuntimeError("boom")

    async def health(request):
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/slow", slow), Route("/broken", broken), Route("/healthz", health)])
    return ClientLimits(app), gate


async def call(app, path: str, client: str) -> tuple[int, bytes]:
    scope = {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": b"",
             "headers": [], "client": (client, 5000), "server": ("127.0.0.1", 8000), "scheme": "http",
             "http_version": "1.1", "root_path": "", "asgi": {"version": "3.0"}}
    sent = []

    async def receive():
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_one_client_is_bounded_and_the_others_are_not():
    refused = []
    ClientLimits.configure(3, lambda route, status: refused.append((route, status)))

    async def scenario():
        app, gate = app_and_gate()
        held = [asyncio.ensure_future(call(app, "/slow", "10.0.0.1")) for _ in range(3)]
        await asyncio.sleep(0.05)
        assert app.held == {"10.0.0.1": 3}
        status, body = await asyncio.wait_for(call(app, "/slow", "10.0.0.1"), 1.0)  # at once, not held
        assert status == 429 and "10.0.0.1 has 3 requests in progress" in json.loads(body)["error"]
        assert await asyncio.wait_for(call(app, "/healthz", "10.0.0.1"), 1.0) == (200, b"ok")
        other = asyncio.ensure_future(call(app, "/slow", "10.0.0.2"))
        await asyncio.sleep(0.05)
        assert app.held == {"10.0.0.1": 3, "10.0.0.2": 1}
        gate.set()
        assert [await h for h in held] == [(200, b"done")] * 3 and await other == (200, b"done")
        assert app.held == {}  # every slot given back
        with pytest.raises(RuntimeError):
            await call(app, "/broken", "10.0.0.1")
        assert app.held == {}
        assert await call(app, "/slow", "10.0.0.1") == (200, b"done")

    try:
        asyncio.run(scenario())
    finally:
        ClientLimits.configure(16)
    assert refused == [("*", 429)]
