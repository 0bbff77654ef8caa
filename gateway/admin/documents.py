"""Reading admin request bodies and headers: size limit, JSON or YAML, If-Match."""

from __future__ import annotations

import json
from typing import Any

import yaml
from starlette.requests import Request

from gateway.body_limits import MAX_DEPTH, BodyTooLarge, deeper_than, read_limited
from gateway.errors import HttpError
from releases.errors import InvalidRequest


class TooDeep(Exception):
    """A document nests objects and arrays past ``MAX_DEPTH``."""


class _NoAliasLoader(yaml.SafeLoader):
    """Safe YAML without aliases, and no deeper than ``MAX_DEPTH``. A few hundred bytes of
    nested aliases expand into gigabytes (a "billion laughs"), built and walked on the event
    loop the data plane shares; specs and golden sets have no need of them. The composer
    recurses once per level, so depth is counted here, while composing, before Python's
    recursion limit can be reached."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not accepted", mark)
        if not self.check_event(yaml.CollectionStartEvent):
            return super().compose_node(parent, index)
        if self.depth >= MAX_DEPTH:
            raise TooDeep
        self.depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self.depth -= 1


def load_yaml(raw: bytes) -> Any:
    """Safe YAML, less aliases; ``TooDeep`` past ``MAX_DEPTH``."""
    return yaml.load(raw, Loader=_NoAliasLoader)


def yaml_error(exc: yaml.YAMLError, source: str) -> str:
    """One line saying where and why ``source`` (``the body``, a file's name) is not YAML.

    PyYAML's own text spans lines and names the input ``"<byte string>"``, which tells the
    reader nothing about which document was wrong.
    """
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem_mark is not None:
        mark = exc.problem_mark
        text = f"{source} is not valid YAML at line {mark.line + 1}, column {mark.column + 1}"
        text += f": {exc.problem}"
        if exc.context and exc.context_mark is not None:
            text += f" ({exc.context} at line {exc.context_mark.line + 1})"
        return text
    if isinstance(exc, yaml.reader.ReaderError):  # bytes that are not text
        return f"{source} is not valid YAML: {exc.reason} at byte {exc.position}"
    return f"{source} is not valid YAML: {exc}"


async def read_body(request: Request, limit: int) -> bytes:
    try:
        return await read_limited(request, limit)
    except BodyTooLarge as exc:
        raise HttpError(413, "body_too_large", str(exc)) from None


async def read_document(request: Request, limit: int, *, allow_yaml: bool = False) -> Any:
    """The body as JSON, or where allowed as YAML unless it is declared JSON; empty is ``{}``."""
    raw = await read_body(request, limit)
    if not raw.strip():
        return {}
    as_yaml = allow_yaml and "json" not in request.headers.get("content-type", "")
    try:
        document = load_yaml(raw) if as_yaml else json.loads(raw)
        # json's C parser stops itself with a RecursionError near Python's limit (about
        # 1000 levels), unwinding cleanly; shallower documents are measured without recursion.
        too_deep = deeper_than(document)
    except yaml.YAMLError as exc:
        raise HttpError(400, "invalid_body", yaml_error(exc, "the body")) from None
    except ValueError as exc:
        raise HttpError(400, "invalid_body", f"the body is not valid JSON: {exc}") from None
    except (TooDeep, RecursionError):
        too_deep = True
    if too_deep:
        message = f"the body nests objects and arrays more than {MAX_DEPTH} levels deep"
        raise HttpError(400, "body_too_deep", message)
    return document


async def read_object(request: Request, limit: int) -> dict[str, Any]:
    document = await read_document(request, limit)
    if not isinstance(document, dict):
        raise HttpError(400, "invalid_body", "the body must be a JSON object")
    return document


def expected_generation(request: Request, body: dict[str, Any]) -> int | None:
    """The generation a channel write expects: ``If-Match`` (plain or quoted), else the body's
    ``expected_generation``; None when neither is given."""
    header = request.headers.get("if-match")
    value: object = body.get("expected_generation")
    if header is not None:
        value = header.strip().removeprefix("W/").strip('"')
    if value is None:
        return None
    if isinstance(value, bool) or not (
        # isascii: "²".isdigit() is true, and int() refuses it
        isinstance(value, int) or (isinstance(value, str) and value.isascii() and value.isdigit())
    ):
        raise HttpError(
            400,
            "invalid_generation",
            f"If-Match must be a channel generation number, got {value!r}",
        )
    return int(value)


def text_field(body: dict[str, Any], name: str, *, required: bool = False) -> str | None:
    """A string field of a body; 422 naming the field when it is missing or not a string."""
    value = body.get(name)
    if value is None:
        if required:
            raise InvalidRequest(f"the body needs a {name!r} string", name)
        return None
    if not isinstance(value, str):
        raise InvalidRequest(f"{name!r} must be a string", name)
    return value
