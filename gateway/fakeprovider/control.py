"""``/_fake``: how tests see what the fake was sent, tell it how to behave, and wait on it.

Bad input is refused with 422 and field-level details, like the gateway's admin API.
"""

from __future__ import annotations

import asyncio
import contextlib

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from gateway.fakeprovider.behaviour import Behaviour
from gateway.fakeprovider.counters import Counter
from gateway.fakeprovider.provider import fake_provider

# A long-poll longer than this is a test that forgot its own timeout.
MAX_WAIT_SECONDS = 60.0


class WaitQuery(BaseModel):
    """``GET /_fake/wait`` parameters: wait until ``counter >= value``, at most ``timeout`` s."""

    model_config = ConfigDict(extra="forbid")

    counter: Counter
    value: int = 1
    timeout: float = Field(default=5.0, ge=0, le=MAX_WAIT_SECONDS)


def refused(what: str, details: list[dict[str, str]]) -> JSONResponse:
    """422 with one entry per bad field, and a message that names them all."""
    message = f"invalid {what}: " + "; ".join(f"{d['field']}: {d['message']}" for d in details)
    return JSONResponse(
        {"error": {"type": "invalid_request", "message": message, "details": details}},
        status_code=422,
    )


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    return [
        {"field": ".".join(str(part) for part in e["loc"]) or "body", "message": e["msg"]}
        for e in exc.errors()
    ]


async def list_requests(request: Request) -> JSONResponse:
    entries = fake_provider(request).log.entries()
    return JSONResponse([entry.as_json() for entry in entries])


async def clear_requests(request: Request) -> JSONResponse:
    return JSONResponse({"cleared": fake_provider(request).log.clear()})


async def show_behaviour(request: Request) -> JSONResponse:
    return JSONResponse(fake_provider(request).behaviours.as_json())


async def set_behaviour(request: Request) -> JSONResponse:
    try:
        behaviour = Behaviour.model_validate_json(await request.body())
    except ValidationError as exc:
        return refused("behaviour", field_errors(exc))
    fake_provider(request).behaviours.set(behaviour)
    return JSONResponse(behaviour.model_dump())


async def reset_behaviour(request: Request) -> JSONResponse:
    behaviours = fake_provider(request).behaviours
    behaviours.reset()
    return JSONResponse(behaviours.as_json())


async def stats(request: Request) -> JSONResponse:
    return JSONResponse(fake_provider(request).stats.snapshot())


async def wait(request: Request) -> JSONResponse:
    try:
        query = WaitQuery.model_validate(dict(request.query_params))
    except ValidationError as exc:
        return refused("wait query", field_errors(exc))
    stats = fake_provider(request).stats
    # The Condition wakes this on every counter change; no polling.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(query.timeout):
            await stats.wait_until(query.counter, query.value)
    value = stats.value(query.counter)
    return JSONResponse({"reached": value >= query.value, "value": value})


routes = Mount(
    "/_fake",
    routes=[
        Route("/requests", list_requests, methods=["GET"]),
        Route("/requests", clear_requests, methods=["DELETE"]),
        Route("/behaviour", show_behaviour, methods=["GET"]),
        Route("/behaviour", set_behaviour, methods=["PUT"]),
        Route("/behaviour", reset_behaviour, methods=["DELETE"]),
        Route("/stats", stats, methods=["GET"]),
        Route("/wait", wait, methods=["GET"]),
    ],
)
