"""The ingress deployment: a FastAPI app served by Ray Serve (`@serve.ingress`).

    GET  /                   the page: streams with live views and figures (page.py)
    POST /v1/segment         an image -> `maskrt run --json`'s line for it, with category names
    GET  /v1/streams         every stream's figures (JSON)
    GET  /streams/NAME.mjpg  the stream's annotated frames, multipart/x-mixed-replace (MJPEG)
    GET  /streams/NAME.jpg   its newest annotated frame
    GET  /healthz            200 while a model replica is running, else 503
    GET  /metrics            Prometheus text format (metrics.py)

The gateway checks uploads (4xx with a one-line reason, uploads.py: everything but the pixels)
and hands the bytes to the model deployment through a DeploymentHandle; replicas decode them.
Overload is Serve's: when every model replica has max_ongoing_requests in hand and
max_queued_requests wait at this caller, the handle raises BackPressureError at once, answered
as 503 with Retry-After. A replica that dies with a request in hand fails that request (503,
"retry"); Serve starts a replacement. Every answer is JSON ({"error": "..."} when refused)
except the page, frames and metrics.
"""

# No `from __future__ import annotations` here: FastAPI reads the route signatures' annotations
# (Request) at run time, and Serve's ingress wrapper does not resolve string annotations.
import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

import ray
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from ray import serve
from ray.exceptions import ActorUnavailableError, RayActorError, RayTaskError
from ray.serve.exceptions import BackPressureError, RayServeException

from ..errors import MaskrtError
from . import uploads
from .guard import ClientLimits
from .metrics import CONTENT_TYPE, ServiceMetrics
from .page import render_page
from .streams import NAMESPACE

HEALTH_WAIT_S = 0.5
api = FastAPI(title="maskrt serve", docs_url=None, redoc_url=None, openapi_url=None)
api.add_middleware(ClientLimits)  # per-client bound on requests in progress (guard.py)


@dataclass(frozen=True)
class GatewayOptions:
    """app: the Serve application's name; model_deployment: the model deployment's name;
    score_threshold: the replicas' own threshold (the lowest a request may ask for)."""

    app: str
    model_deployment: str
    model_label: str
    replicas_label: str
    max_batch: int
    score_threshold: float
    streams: tuple = ()
    max_bytes: int = uploads.MAX_BYTES
    max_pixels: int = uploads.MAX_PIXELS
    request_timeout_s: float = 30.0
    upload_timeout_s: float = 60.0
    max_client_requests: int = 16
    max_parts: int = uploads.MAX_PARTS
    mjpeg_interval_s: float = 0.1
    mjpeg_max_s: float = 600.0


class Refused(Exception):
    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status


async def _result(awaitable):
    return await awaitable


def _line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


@serve.ingress(api)
class Gateway:
    def __init__(self, model, options: GatewayOptions):
        self.model, self.options = model, options
        self.metrics = ServiceMetrics(options.max_batch)
        self._actors: dict = {}
        self._health: Optional[tuple] = None
        self._health_task: Optional[asyncio.Task] = None
        # uploads are parsed and their headers probed here, never on the event loop: a body of
        # many tiny parts (or a PNG of many chunks) costs this pool's time, not every route's
        self._uploads = ThreadPoolExecutor(2, thread_name_prefix="uploads")
        ClientLimits.configure(options.max_client_requests, self.metrics.request)

    # -- images ------------------------------------------------------------------------------

    @api.post("/v1/segment")
    async def segment(self, request: Request):
        t0 = time.perf_counter()
        try:
            o = self.options
            uploads.check_length(request.headers.get("content-length"), o.max_bytes)
            threshold = uploads.score_threshold(request.query_params.get("score_threshold"), o.score_threshold)
            body = await self._body(request)
            data, name = await asyncio.get_running_loop().run_in_executor(
                self._uploads, uploads.checked_upload, request.headers.get("content-type"), body, o.max_bytes,
                o.max_pixels, o.max_parts)
            result = await self._infer(data, threshold, name)
        except uploads.UploadError as exc:
            return self._refuse("/v1/segment", exc.status, str(exc), t0)
        except Refused as exc:
            return self._refuse("/v1/segment", exc.status, str(exc), t0)
        if "error" in result:  # bytes that passed the header check but do not decode
            return self._refuse("/v1/segment", result["status"], result["error"], t0)
        self.metrics.answered(result["timing"])
        self.metrics.request("/v1/segment", 200, time.perf_counter() - t0)
        return JSONResponse(result["record"])

    async def _body(self, request: Request) -> bytes:
        """The body, read no further than max_bytes + 1 (chunked uploads have no Content-Length),
        within upload_timeout_s of the request's arrival (408 after: a slow or stalled upload
        holds its slot no longer)."""
        chunks, size = [], 0
        try:
            async with asyncio.timeout(self.options.upload_timeout_s):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > self.options.max_bytes:
                        raise uploads.UploadError(413, f"the body is over {self.options.max_bytes} bytes")
                    chunks.append(chunk)
        except TimeoutError:
            raise uploads.UploadError(408, f"the upload did not arrive within {self.options.upload_timeout_s:g} s "
                                           f"({size} bytes came)") from None
        return b"".join(chunks)

    async def _infer(self, data: bytes, threshold, name) -> dict:
        self.metrics.in_flight += 1
        response = None
        try:
            response = self.model.segment.remote(data, threshold, name)
            return await asyncio.wait_for(_result(response), self.options.request_timeout_s)
        except BackPressureError:
            raise Refused(503, "overloaded: every replica is busy and the queue is full; retry later") from None
        except asyncio.TimeoutError:
            response.cancel()
            raise Refused(503, f"no answer within {self.options.request_timeout_s:.0f} s; retry later") from None
        except RayTaskError as exc:
            if isinstance(exc, MaskrtError):  # as_instanceof_cause: the replica refused the image
                raise Refused(422, _line(exc.cause)) from None
            raise Refused(500, f"the model failed on this image: {_line(exc.cause)}") from None
        except (RayActorError, ActorUnavailableError, RayServeException) as exc:
            raise Refused(503, f"the replica answering this request failed ({type(exc).__name__}); "
                               "retry") from None
        finally:
            self.metrics.in_flight -= 1

    def _refuse(self, route: str, status: int, reason: str, t0: float) -> JSONResponse:
        self.metrics.request(route, status, time.perf_counter() - t0)
        headers = {"Retry-After": "1"} if status == 503 else None
        return JSONResponse({"error": reason}, status_code=status, headers=headers)

    # -- streams -----------------------------------------------------------------------------

    async def _actor(self, name: str):
        """The stream's actor handle, looked up once (off the event loop): a handle stays valid
        while Ray restarts the actor behind it."""
        if name not in self.options.streams:
            raise Refused(404, f"no stream named {name!r}")
        if name not in self._actors:
            self._actors[name] = await asyncio.to_thread(ray.get_actor, f"maskrt-stream-{name}", NAMESPACE)
        return self._actors[name]

    async def _call(self, name: str, method: str, *args, timeout: float = 2.0):
        actor = await self._actor(name)
        return await asyncio.wait_for(_result(getattr(actor, method).remote(*args)), timeout)

    async def _stream_stats(self) -> list[dict]:
        async def one(name: str) -> dict:
            try:
                return await self._call(name, "stats")
            except Exception as exc:  # noqa: BLE001 - shown as unavailable while it restarts
                return {"name": name, "state": "unavailable", "problems": [_line(exc)]}

        return list(await asyncio.gather(*(one(n) for n in self.options.streams)))

    @api.get("/v1/streams")
    async def streams(self):
        self.metrics.request("/v1/streams", 200)
        return JSONResponse(await self._stream_stats(), headers={"Cache-Control": "no-store"})

    @api.get("/streams/{name}.jpg")
    async def frame(self, name: str):
        try:
            got = await self._call(name, "latest", -1)
        except Refused as exc:
            return self._refuse("/streams/frame", exc.status, str(exc), time.perf_counter())
        except Exception as exc:  # noqa: BLE001
            return self._refuse("/streams/frame", 503, f"stream {name} is unavailable ({_line(exc)})",
                                time.perf_counter())
        if got is None:
            return self._refuse("/streams/frame", 503, f"stream {name} has no frame yet", time.perf_counter())
        self.metrics.request("/streams/frame", 200)
        return Response(got[1], media_type="image/jpeg", headers={"Cache-Control": "no-store"})

    @api.get("/streams/{name}.mjpg")
    async def mjpeg(self, name: str):
        if name not in self.options.streams:
            return self._refuse("/streams/mjpeg", 404, f"no stream named {name!r}", time.perf_counter())
        self.metrics.request("/streams/mjpeg", 200)
        return StreamingResponse(self._parts(name), media_type="multipart/x-mixed-replace; boundary=frame",
                                 headers={"Cache-Control": "no-store"})

    async def _parts(self, name: str):
        """MJPEG parts of each new frame, for up to mjpeg_max_s (the page reopens the feed)."""
        seq, end = -1, time.monotonic() + self.options.mjpeg_max_s
        while time.monotonic() < end:
            try:
                got = await self._call(name, "latest", seq, timeout=5.0)
            except Exception:  # noqa: BLE001 - the actor restarts: keep the feed open and wait
                got = None
                await asyncio.sleep(0.5)
            if got is not None:
                seq, jpeg = got
                yield (b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: " + str(len(jpeg)).encode()
                       + b"\r\n\r\n" + jpeg + b"\r\n")
            await asyncio.sleep(self.options.mjpeg_interval_s)

    # -- service -----------------------------------------------------------------------------

    @api.get("/", response_class=HTMLResponse)
    async def page(self):
        self.metrics.request("/", 200)
        o = self.options
        return HTMLResponse(render_page(list(o.streams), o.model_label, o.replicas_label))

    @api.get("/healthz")
    async def healthz(self):
        replicas = await self._replica_states()
        running = replicas.get("RUNNING", 0)
        status = 200 if running else 503
        self.metrics.request("/healthz", status)
        return JSONResponse({"status": "ok" if running else "no model replica is running", "replicas": replicas},
                            status_code=status, headers={"Cache-Control": "no-store"})

    async def _replica_states(self) -> dict:
        """{state: count} of the model deployment's replicas from serve.status(), read at most once
        a second by one thread however many requests ask. A request never waits for a reading
        but the first one (at most HEALTH_WAIT_S): it gets the last one while the next is read
        (the controller may be slow to answer on a loaded machine)."""
        stale = self._health is None or time.monotonic() - self._health[0] > 1.0
        if stale and (self._health_task is None or self._health_task.done()):
            self._health_task = asyncio.ensure_future(asyncio.to_thread(self._read_states))
        if self._health is None:
            try:
                await asyncio.wait_for(asyncio.shield(self._health_task), HEALTH_WAIT_S)
            except asyncio.TimeoutError:
                pass
        return self._health[1] if self._health is not None else {"unknown": 0, "error": "not read yet"}

    def _read_states(self) -> None:
        now = time.monotonic()
        try:
            app = serve.status().applications[self.options.app]
            states = app.deployments[self.options.model_deployment].replica_states
            self._health = (now, {str(getattr(k, "value", k)): int(v) for k, v in states.items()})
        except Exception as exc:  # noqa: BLE001 - the controller is unreachable
            self._health = (now, {"unknown": 0, "error": _line(exc)})

    @api.get("/metrics")
    async def metrics_text(self):
        streams = await self._stream_stats() if self.options.streams else []
        self.metrics.request("/metrics", 200)
        return Response(self.metrics.render(streams), media_type=CONTENT_TYPE)

    @api.get("/v1/stats")
    async def stats(self):
        self.metrics.request("/v1/stats", 200)
        return JSONResponse(self.metrics.summary())
