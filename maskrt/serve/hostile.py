"""Hostile clients for a running `maskrt serve`: connections that try to hold the service's
resources without completing a request, to check what one address can take from everyone else.

    python -m maskrt.serve.hostile http://127.0.0.1:8000 --connections 2000 --seconds 60 --source 127.0.0.3

Kinds of connection (`mix`: kind -> share of `connections`):
- headers: the request line and one header of a POST, then nothing (slowloris);
- body:    the complete headers of a POST /v1/segment announcing a 1 MB PNG, 3 bytes of it,
           then nothing (a stalled upload);
- parts:   a whole multipart body of tiny parts, as many as fit in `body_bytes`, sent again and
           again (work for the parser).
Each connection is opened again `retry_s` after the server closes it (a refusal, a deadline), so
`connections` stay open or keep trying until `seconds` have passed. Prints (returns) per kind:
connections opened, the statuses the server answered, connections still open at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from urllib.parse import urlsplit

KINDS = ("headers", "body", "parts")


def _payload(kind: str, host: str, body_bytes: int) -> bytes:
    if kind == "headers":
        return b"POST /v1/segment HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
    if kind == "body":
        return (b"POST /v1/segment HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: image/png\r\n"
                b"Content-Length: 1048576\r\n\r\n\x89PN")
    part = b'--x\r\nContent-Disposition: form-data; name="f"\r\n\r\na\r\n'
    body = part * max(1, (body_bytes - 7) // len(part)) + b"--x--\r\n"
    return (b"POST /v1/segment HTTP/1.1\r\nHost: " + host.encode() + b"\r\nContent-Type: multipart/form-data; "
            b"boundary=x\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)


async def _connection(kind: str, url, source: str | None, deadline: float, body_bytes: int, retry_s: float,
                      report: dict) -> None:
    payload = _payload(kind, url.netloc, body_bytes)
    while time.monotonic() < deadline:
        try:
            reader, writer = await asyncio.open_connection(url.hostname, url.port,
                                                           local_addr=(source, 0) if source else None)
        except OSError as exc:
            report["errors"][type(exc).__name__] += 1
            await asyncio.sleep(retry_s)
            continue
        report["opened"] += 1
        report["open"] += 1
        try:
            writer.write(payload)
            await writer.drain()
            line = await asyncio.wait_for(reader.readline(), max(0.01, deadline - time.monotonic()))
            parts = line.split()
            report["statuses"][parts[1].decode() if len(parts) > 1 else "closed"] += 1
        except (asyncio.TimeoutError, OSError):
            pass
        finally:
            report["open"] -= 1
            writer.close()
        await asyncio.sleep(retry_s)


async def _attack(url: str, connections: int, seconds: float, source: str | None, mix: dict,
                  body_bytes: int, retry_s: float) -> dict:
    target = urlsplit(url)
    deadline = time.monotonic() + seconds
    reports = {k: {"opened": 0, "open": 0, "statuses": Counter(), "errors": Counter()} for k in mix}
    tasks = []
    for kind, share in mix.items():
        tasks += [_connection(kind, target, source, deadline, body_bytes, retry_s, reports[kind])
                  for _ in range(round(connections * share))]
    await asyncio.gather(*tasks)
    return {k: {**r, "statuses": dict(r["statuses"]), "errors": dict(r["errors"])} for k, r in reports.items()}


def run_hostile(url: str, connections: int = 2000, seconds: float = 30.0, source: str | None = None,
                mix: dict | None = None, body_bytes: int = 1024 * 1024, retry_s: float = 0.2) -> dict:
    """Run the connections (see the module docstring) for `seconds`; the per-kind report."""
    mix = mix or {"headers": 0.5, "body": 0.45, "parts": 0.05}
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise ValueError(f"unknown kinds {sorted(unknown)}; choose from {KINDS}")
    return asyncio.run(_attack(url, connections, seconds, source, mix, body_bytes, retry_s))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m maskrt.serve.hostile", description=__doc__.splitlines()[0])
    p.add_argument("url")
    p.add_argument("--connections", type=int, default=2000)
    p.add_argument("--seconds", type=float, default=30.0)
    p.add_argument("--source", help="local address to connect from (e.g. 127.0.0.3)")
    p.add_argument("--body-bytes", type=int, default=1024 * 1024, help="size of each many-parts body")
    p.add_argument("--retry-s", type=float, default=0.2, help="wait before opening a closed connection again")
    p.add_argument("--mix", default="headers=0.5,body=0.45,parts=0.05", help="KIND=SHARE,... of the connections")
    args = p.parse_args(argv)
    mix = {k: float(v) for k, v in (item.split("=") for item in args.mix.split(","))}
    print(json.dumps(run_hostile(args.url, args.connections, args.seconds, args.source, mix, args.body_bytes,
                                 args.retry_s), indent=1))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
