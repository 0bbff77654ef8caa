"""Admin endpoints for golden sets, eval runs, channel eval gates and the drift record.

``POST /admin/evals`` runs the set here, in the gateway, so the result it signs is one it
computed, never one a client claims. With ``Accept: application/x-ndjson`` it answers a
stream of JSON lines (``start``, one ``case`` per finished case, then ``result`` or
``error``); otherwise it answers the stored result (201) once the run ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from gateway.admin.auth import READ, WRITE
from gateway.admin.documents import expected_generation, read_document, read_object
from gateway.admin.schemas import bodies
from gateway.admin.schemas.answers import DriftWatch, EvalSummary
from gateway.errors import HttpError
from gateway.keys import presented_key
from gateway.runtime import runtime
from releases.errors import RegistryError
from releases.evals.records import CaseResult, EvalResult

NDJSON = "application/x-ndjson"


# -- golden sets --------------------------------------------------------------------------------


async def create_golden(request: Request) -> JSONResponse:
    """Register a golden set (JSON or YAML); 201 when new, 200 when the same cases exist."""
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE)
    body = await read_document(request, s.settings.max_admin_body_bytes, allow_yaml=True)
    golden, created = await runtime(request).evals.registry.register_set(body, actor)
    return JSONResponse(golden.model_dump(mode="json"), status_code=201 if created else 200)


async def list_golden(request: Request) -> JSONResponse:
    await runtime(request).services.auth.require(request, READ)
    found = await runtime(request).evals.registry.golden_sets(request.query_params.get("name"))
    return JSONResponse([g.model_dump(mode="json") for g in found])


async def show_golden(request: Request) -> JSONResponse:
    await runtime(request).services.auth.require(request, READ)
    golden = await runtime(request).evals.registry.golden_set(request.path_params["ref"])
    return JSONResponse(golden.model_dump(mode="json"))


# -- eval runs ----------------------------------------------------------------------------------


def _line(value: dict[str, Any]) -> bytes:
    return orjson.dumps(value) + b"\n"


async def run_eval(request: Request) -> Response:
    """Run a golden set against a release (operator and admin keys only)."""
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE)
    body = bodies.RunEval.parse(await read_object(request, s.settings.max_admin_body_bytes))
    release_id, set_ref, concurrency = body.release, body.set, body.concurrency
    evals = runtime(request).evals
    release = await s.registry.release(release_id)
    golden = await evals.registry.golden_set(set_ref)
    secret = presented_key(request.headers)
    if secret is None:  # require() passed, so a key was presented
        raise HttpError(401, "unauthorized", "no key")
    if NDJSON not in request.headers.get("accept", ""):
        result = await evals.run(release, golden, actor, secret, concurrency)
        return JSONResponse(result.model_dump(mode="json"), status_code=201)

    queue: asyncio.Queue[bytes | None] = asyncio.Queue()

    async def on_case(case: CaseResult, done: int, total: int) -> None:
        progress = {"event": "case", "done": done, "total": total, "case": case.id}
        await queue.put(_line({**progress, "passed": case.passed}))

    async def work() -> None:
        try:
            result: EvalResult = await evals.run(
                release, golden, actor, secret, concurrency, on_case
            )
            await queue.put(_line({"event": "result", "result": result.model_dump(mode="json")}))
        except RegistryError as exc:
            await queue.put(_line({"event": "error", "error": {"type": exc.kind, "message": exc.message}}))  # fmt: skip
        except Exception as exc:  # the stream is already 200: the last line says what failed
            await queue.put(_line({"event": "error", "error": {"type": "internal_error", "message": repr(exc)}}))  # fmt: skip
        finally:
            await queue.put(None)

    # The run finishes and is recorded even if the caller hangs up; shutdown waits for it.
    evals.in_background(work(), name=f"eval-{release.id}")
    total = len(evals.registry.spec_of(golden).cases)

    async def lines() -> AsyncIterator[bytes]:
        yield _line({"event": "start", "release": release.id, "set": golden.id, "total": total})
        while (item := await queue.get()) is not None:
            yield item

    return StreamingResponse(lines(), media_type=NDJSON)


async def list_evals(request: Request) -> JSONResponse:
    """Results without their cases, newest first (``?release=``, ``?set=`` a set name)."""
    await runtime(request).services.auth.require(request, READ)
    found = await runtime(request).evals.registry.results(
        request.query_params.get("release"), request.query_params.get("set")
    )
    return JSONResponse(
        [EvalSummary.model_validate(r.summary()).model_dump(mode="json") for r in found]
    )


async def show_eval(request: Request) -> JSONResponse:
    await runtime(request).services.auth.require(request, READ)
    result = await runtime(request).evals.registry.result(request.path_params["result_id"])
    return JSONResponse(result.model_dump(mode="json"))


# -- gates and drift ----------------------------------------------------------------------------


async def show_gate(request: Request) -> JSONResponse:
    await runtime(request).services.auth.require(request, READ)
    channel = request.path_params["channel"]
    gate = await runtime(request).evals.registry.gate(channel)
    if gate is None:
        raise HttpError(404, "not_found", f"channel {channel!r} has no eval gate")
    return JSONResponse(gate.model_dump(mode="json"))


async def set_gate(request: Request) -> JSONResponse:
    """``PUT /admin/channels/{ch}/gate`` ``{set, min_pass_rate, tolerance?, reason?}``, with
    ``If-Match`` (or ``expected_generation``) as every channel write."""
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE, request.path_params["channel"])
    raw = await read_object(request, s.settings.max_admin_body_bytes)
    body = bodies.SetGate.parse(raw)
    gate = await runtime(request).evals.registry.set_gate(
        request.path_params["channel"],
        body.set,
        body.min_pass_rate,
        body.tolerance,
        actor,
        body.reason or "",
        expected_generation(request, raw),
    )
    return JSONResponse(gate.model_dump(mode="json"))


async def clear_gate(request: Request) -> JSONResponse:
    s = runtime(request).services
    actor = await s.auth.require(request, WRITE, request.path_params["channel"])
    raw = await read_object(request, s.settings.max_admin_body_bytes)
    gate = await runtime(request).evals.registry.clear_gate(
        request.path_params["channel"],
        actor,
        bodies.Reasoned.parse(raw).reason or "",
        expected_generation(request, raw),
    )
    return JSONResponse(gate.model_dump(mode="json"))


async def list_drift(request: Request) -> JSONResponse:
    """The newest drift check of every gated channel the watch has run on."""
    await runtime(request).services.auth.require(request, READ)
    checks = await runtime(request).evals.registry.drift_checks()
    return JSONResponse([c.model_dump(mode="json") for c in checks])


async def drift_watch(request: Request) -> JSONResponse:
    """Whether the drift watch runs on this replica: ``{enabled, interval, tolerance, webhook}``
    (``webhook``: whether one is set; its URL may carry a secret)."""
    await runtime(request).services.auth.require(request, READ)
    watch = DriftWatch.model_validate(runtime(request).drift.status())
    return JSONResponse(watch.model_dump(mode="json"))
