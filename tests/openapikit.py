"""The admin API's OpenAPI document as tests read it: which route it describes, and whether
an answer conforms to what it documents for that route and status."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from gateway.admin.docs import document_bytes

JSON = "application/json"


def document() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(document_bytes())
    return doc


def template(path: str) -> str:
    """A Starlette route path (``/channels/{channel:str}``) as OpenAPI writes it."""
    return re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path)


def problems(doc: dict[str, Any], method: str, path: str, answer: httpx.Response) -> list[str]:
    """What is wrong with ``answer`` to ``method path`` (a template) by the document: a
    status it does not list, or a JSON body its schema refuses."""
    responses = doc["paths"][path][method.lower()]["responses"]
    documented = responses.get(str(answer.status_code))
    if documented is None:
        return [f"{method} {path}: status {answer.status_code} is not documented ({answer.text[:200]})"]  # fmt: skip
    content = documented.get("content", {})
    if JSON not in content or not answer.headers.get("content-type", "").startswith(JSON):
        return []
    schema = {**content[JSON]["schema"], "components": doc["components"]}
    return [
        f"{method} {path} {answer.status_code}: {error.message[:300]} at {list(error.absolute_path)}"
        for error in Draft202012Validator(schema).iter_errors(answer.json())
    ]
