"""The CLI's admin client builds its bodies with the gateway's own body models and checks
the answers of its main commands against the models the gateway builds them with."""

from __future__ import annotations

import pytest
import respx

from gateway.admin.schemas import bodies
from tests.clikit import gateway, sent_json

CHANNEL: dict[str, object] = {
    "name": "prod",
    "stable": "bot-v1",
    "canary": None,
    "shadow": None,
    "generation": 4,
    "updated_by": "ops",
    "updated_at": "2024-09-02T10:00:00Z",
    "previous_stables": [],
}


def test_a_slice_body_is_what_the_gateway_model_parses(api: respx.MockRouter) -> None:
    route = api.put("/admin/channels/prod/canary").respond(200, json=CHANNEL)

    assert gateway("channel", "canary", "prod", "bot-v2", "--weight", "5", "--reason", "r") == 0

    sent = sent_json(route)
    assert sent == {"release": "bot-v2", "weight": 5.0, "reason": "r"}
    assert bodies.SetCanary.parse(sent).weight == 5.0


@pytest.mark.parametrize(
    ("argv", "method", "path", "answer"),
    [
        (
            ["channel", "promote", "prod", "bot-v2"],
            "POST",
            "/admin/channels/prod/promote",
            {**CHANNEL, "generation": "five"},
        ),  # fmt: skip
        (
            ["channel", "rollback", "prod"],
            "POST",
            "/admin/channels/prod/rollback",
            {"name": "prod"},
        ),  # fmt: skip
        (
            ["key", "create", "web", "--role", "app"],
            "POST",
            "/admin/keys",
            {"name": "web", "role": "app", "channels": ["*"]},
        ),  # fmt: skip
        (["audit", "list"], "GET", "/admin/audit", [{"seq": 1}]),
    ],
)
def test_an_answer_of_another_shape_is_reported_not_rendered(
    api: respx.MockRouter,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    method: str,
    path: str,
    answer: object,
) -> None:
    api.request(method, path).respond(200 if method == "GET" else 201, json=answer)

    assert gateway(*argv) == 1

    err = capsys.readouterr().err
    assert f"the gateway answered {path} with a body that is not" in err


def test_fields_a_newer_gateway_adds_are_left_alone(
    api: respx.MockRouter, capsys: pytest.CaptureFixture[str]
) -> None:
    api.post("/admin/channels/prod/rollback").respond(200, json={**CHANNEL, "sla_tier": 10})

    assert gateway("--json", "channel", "rollback", "prod") == 0

    assert '"sla_tier": 10' in capsys.readouterr().out
