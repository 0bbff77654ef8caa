"""Embedding releases (``model.task: embedding``): what registration takes and refuses, and
that the new field at its default leaves every existing release id as it was."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from releases.content import content_digest
from releases.diff import diff_releases
from releases.errors import InvalidSpec
from releases.models import Release
from releases.spec import validate_spec
from tests.factories import ADMIN_TOKEN, spec
from tests.live import LiveServer

PINNED = {
    "openai": re.compile(r".+-\d{4}-\d{2}-\d{2}|text-embedding-3-small"),
    "anthropic": re.compile(r".+-\d{8}"),
    "gemini": re.compile(r".+-\d{3}"),
}
KINDS = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini"}
EMBEDDER = {"provider": "openai", "id": "text-embedding-3-small", "task": "embedding"}


def embedding_spec(**overrides: Any) -> dict[str, Any]:
    """An embedding release: a model and its pinned params, nothing else."""
    return {
        "name": "doc-embedder",
        "model": EMBEDDER,
        "params": {"dimensions": 256, "encoding_format": "float"},
        **overrides,
    }


def test_task_chat_spelled_out_is_the_same_release_as_task_left_out() -> None:
    """Pinning is sacred: every release registered before model.task keeps its id."""
    base = validate_spec(spec(), PINNED)
    chat = validate_spec(spec(model={**spec()["model"], "task": "chat"}), PINNED)
    assert content_digest(chat) == content_digest(base)
    assert "task" not in chat.behaviour()["model"]


def test_an_embedding_release_has_its_own_digest_and_diffs_on_its_model() -> None:
    embedder = validate_spec(embedding_spec(), PINNED, KINDS)
    as_chat = validate_spec(embedding_spec(model={**EMBEDDER, "task": "chat"}, params={}), PINNED)
    assert embedder.behaviour()["model"]["task"] == "embedding"
    assert content_digest(embedder) != content_digest(as_chat)
    a, b = (
        Release(id=f"e-v{i}-000000", name="e", version=i, digest=content_digest(s),
                spec=s.model_dump(mode="json", exclude_none=True), created_by="t", created_at="t")
        for i, s in ((1, as_chat), (2, embedder))
    )  # fmt: skip
    diff = diff_releases(a, b)
    chat_model = {"provider": "openai", "id": "text-embedding-3-small"}
    assert diff["model"] == {"a": chat_model, "b": EMBEDDER}
    assert diff["params"] == {
        "dimensions": {"a": None, "b": 256}, "encoding_format": {"a": None, "b": "float"}}  # fmt: skip


def test_an_embedding_release_registers_on_each_kind_with_an_embeddings_api() -> None:
    for model in (
        EMBEDDER,
        {"provider": "gemini", "id": "text-embedding-004", "task": "embedding"},
    ):
        checked = validate_spec(embedding_spec(model=model), PINNED, KINDS)
        assert checked.params.dimensions == 256


def refused(body: dict[str, Any]) -> dict[str, str]:
    """The fields registration names, with their messages."""
    with pytest.raises(InvalidSpec) as caught:
        validate_spec(body, PINNED, KINDS)
    return {e.field: e.message for e in caught.value.errors}


CLAUDE_EMBEDDER = {"provider": "anthropic", "id": "claude-3-5-sonnet-20241022", "task": "embedding"}


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        pytest.param(
            embedding_spec(model=CLAUDE_EMBEDDER), "model.task",
            "anthropic providers have no embeddings API", id="anthropic-has-no-embeddings",
        ),
        pytest.param(
            embedding_spec(prompt={"system": "Embed well."}), "prompt.system",
            "it has no prompt", id="prompt-on-embedding",
        ),
        pytest.param(
            embedding_spec(prompt={"messages": [{"role": "user", "content": "Hi"}]}),
            "prompt.messages", "it has no prompt", id="few-shot-on-embedding",
        ),
        pytest.param(
            embedding_spec(tools=spec(tools=[{"type": "function", "function": {"name": "f"}}])[
                "tools"]), "tools", "it has no tools", id="tools-on-embedding",
        ),
        pytest.param(
            embedding_spec(tools_policy="caller"), "tools_policy", "it has no tools",
            id="tools-policy-on-embedding",
        ),
        pytest.param(
            embedding_spec(params={"temperature": 0.2}), "params.temperature",
            "takes only dimensions and encoding_format", id="chat-param-on-embedding",
        ),
        pytest.param(
            embedding_spec(client_overridable=["max_tokens"]), "client_overridable.0",
            "takes only dimensions and encoding_format", id="chat-overridable-on-embedding",
        ),
        pytest.param(
            spec(params={"dimensions": 256}), "params.dimensions",
            "a param of embedding releases only", id="dimensions-on-chat",
        ),
        pytest.param(
            spec(params={"encoding_format": "base64"}), "params.encoding_format",
            "a param of embedding releases only", id="encoding-format-on-chat",
        ),
        pytest.param(
            embedding_spec(params={"encoding_format": "int8"}), "params.encoding_format",
            "'float' or 'base64'", id="unknown-encoding",
        ),
        pytest.param(
            embedding_spec(params={"dimensions": 0}), "params.dimensions", "greater than",
            id="no-dimensions",
        ),
        pytest.param(
            embedding_spec(model={**EMBEDDER, "task": "rerank"}), "model.task", "'embedding'",
            id="unknown-task",
        ),
    ],
)  # fmt: skip
def test_what_an_embedding_release_cannot_carry_is_refused_by_field(
    body: dict[str, Any], field: str, words: str
) -> None:
    errors = refused(body)
    assert field in errors and words in errors[field], errors


def test_registration_over_http_answers_422_naming_the_field(gateway: LiveServer) -> None:
    """The admin API's shape; the configured anthropic provider has no embeddings API."""
    body = embedding_spec(model=CLAUDE_EMBEDDER, prompt={"system": "Embed well."})
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as c:
        answer = c.post("/admin/releases", json=body)
        listed = c.get("/admin/releases").json()
    assert answer.status_code == 422, answer.text
    details = {d["field"]: d["message"] for d in answer.json()["error"]["details"]}
    assert "no embeddings API" in details["model.task"]
    assert "it has no prompt" in details["prompt.system"]
    assert listed == []


def test_openais_undated_embedding_models_count_as_pinned_on_its_own_api(
    gateway: LiveServer,
) -> None:
    """OpenAI never moves an embedding model under its name; its chat aliases stay refused."""
    with httpx.Client(
        base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    ) as c:
        embedder = c.post("/admin/releases", json=embedding_spec())
        alias = c.post("/admin/releases", json=embedding_spec(model={**EMBEDDER, "id": "gpt-4o"}))
    assert embedder.status_code == 201, embedder.text
    assert embedder.json()["spec"]["model"]["task"] == "embedding"
    assert alias.status_code == 422
    assert alias.json()["error"]["details"][0]["field"] == "model.id"
