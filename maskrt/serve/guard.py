"""What one client may hold of the gateway: a bound on its requests in progress.

Serve's HTTP proxy hands every request whose headers are complete to the one gateway replica,
which takes up to 1000 at a time (app.build_app). Without a bound per client, one address
opening a couple of thousand uploads and sending nothing fills those slots and Serve answers
everyone else 503. `ClientLimits` (ASGI middleware on the gateway's FastAPI app) counts each
client address's requests in progress, the whole response included (an MJPEG feed counts
while it is open), and answers 429 at once, without reading the body, past `limit`. GET
/healthz is exempt: it holds nothing and must answer whoever asks.

The address is the ASGI scope's client: the TCP peer as Serve's proxy (uvicorn) saw it, or the
X-Forwarded-For address when that peer is a trusted proxy (uvicorn trusts 127.0.0.1 by
default, FORWARDED_ALLOW_IPS in the proxy's environment). Behind a load balancer elsewhere,
every client has the balancer's address: give it a larger `--max-client-requests`.

One gateway replica runs per process, so the bound is configured on the class (`configure`).
"""

from __future__ import annotations

from collections import Counter

from starlette.responses import JSONResponse

EXEMPT = ("/healthz",)


class ClientLimits:
    """ASGI middleware; see the module docstring."""

    limit = 16
    on_refused = None  # callable(route, status): the gateway's metrics

    def __init__(self, app):
        self.app = app
        self.held: Counter = Counter()

    @classmethod
    def configure(cls, limit: int, on_refused=None) -> None:
        cls.limit, cls.on_refused = int(limit), on_refused

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope.get("path") in EXEMPT:
            await self.app(scope, receive, send)
            return
        client = (scope.get("client") or ("unknown",))[0]
        limit, on_refused = type(self).limit, type(self).on_refused
        if self.held[client] >= limit:
            if on_refused is not None:
                on_refused("*", 429)
            response = JSONResponse({"error": f"{client} has {limit} requests in progress, the most one client "
                                              "may hold; retry when one has finished"},
                                    status_code=429, headers={"Retry-After": "1"})
            await response(scope, receive, send)
            return
        self.held[client] += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.held[client] -= 1
            if self.held[client] <= 0:
                del self.held[client]
