"""``GET /v1/events``: the verifier's events as server-sent events.

Each event is ``id: N`` / ``event: node.untrusted`` / ``data: {json}``. Events come from the database (ids only
grow), so any replica serves every event and a client resumes with ``Last-Event-ID`` (or ``?since=N``); without
either the stream starts with the next event. ``?node=X`` filters one node. ``?limit=N`` ends the stream after N
events and ``?wait=S`` after S seconds without one (for scripts and tests); otherwise it lasts until the client
leaves, with a comment line every 15 s to keep proxies from closing it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from fastapi import FastAPI, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from veritee.errors import ValidationError
from veritee.service.verifier_events import EventRecord, events_since, last_event_id
from veritee.service.verifier_service import VerifierService

__all__ = ["add_stream_routes", "format_event"]

KEEPALIVE_S = 15.0


def format_event(event: EventRecord) -> str:
    data = json.dumps(event.to_json(), separators=(",", ":"))
    return f"id: {event.id}\nevent: {event.kind.value}\ndata: {data}\n\n"


def _start(since: int | None, last_event: str | None) -> int | None:
    if since is not None:
        return since
    if last_event is None:
        return None
    if not last_event.strip().isdigit():
        raise ValidationError(f"Last-Event-ID {last_event[:40]!r} is not an event id")
    return int(last_event.strip())


def add_stream_routes(app: FastAPI, service: VerifierService) -> None:
    poll = service.config.stream_poll_s

    @app.get("/v1/events")
    async def events(
        request: Request,
        node: str | None = Query(None),
        since: int | None = Query(None, ge=0),
        limit: int | None = Query(None, ge=1),
        wait: float | None = Query(None, gt=0),
    ) -> StreamingResponse:
        start = _start(since, request.headers.get("last-event-id"))
        if start is None:
            start = await run_in_threadpool(last_event_id, service.db)

        async def stream() -> AsyncIterator[str]:
            last, sent = start, 0
            idle_since = time.monotonic()
            ping_at = idle_since + KEEPALIVE_S
            while True:
                batch = await run_in_threadpool(events_since, service.db, last, node_id=node, limit=100)
                for event in batch:
                    yield format_event(event)
                    last, sent = event.id, sent + 1
                    if limit is not None and sent >= limit:
                        return
                now = time.monotonic()
                if batch:
                    idle_since = now
                    continue
                if wait is not None and now - idle_since >= wait:
                    return
                if await request.is_disconnected():
                    return
                if now >= ping_at:
                    ping_at = now + KEEPALIVE_S
                    yield ": keep-alive\n\n"
                await asyncio.sleep(poll)

        headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
