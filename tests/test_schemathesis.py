"""schemathesis against a live gateway (real Redis, fake provider): every operation of the
OpenAPI document gets generated calls (valid and invalid by its schema, a bounded,
derandomized count) with an admin key and with each lesser role. Whatever is sent: never a
500; every answer's status and body are ones the document states; a refused call changes
neither the audit head nor any channel's generation; and the audit chain verifies after the
run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
import schemathesis
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis.checks import (
    content_type_conformance,
    ignored_auth,
    negative_data_rejection,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig
from schemathesis.core.result import Ok
from schemathesis.generation import GenerationMode

from gateway.config import Settings
from gateway.registry_services import RegistryServices
from tests.factories import ADMIN_TOKEN
from tests.fuzzkit import LIVE
from tests.live import LiveServer
from tests.openapikit import document
from tests.stack import OPERATOR, openai_spec, publish

# Generated calls per operation: more with the admin key (it gets past the role check to the
# bodies), fewer with the lesser roles (most are refused at the door). ~45 operations.
EXAMPLES = {"admin": 6, "operator": 3, "auditor": 2, "app": 2}
CH = "st-bot"
ROLES = ["admin", "operator", "auditor", "app"]
CHECKS = [
    not_a_server_error,
    ignored_auth,
    negative_data_rejection,
    response_headers_conformance,
    status_code_conformance,
    response_schema_conformance,
    content_type_conformance,
]
# The docs page's files are not API answers (their bodies are the page's script and style).
UNATTACKED = {"/admin/docs", "/admin/docs/{asset}"}


def state(store: redis.Redis, services: RegistryServices) -> tuple[Any, Any]:
    """What a refused call must leave as it was: the audit head and every channel (its
    generation is inside)."""
    keys = services.registry.keys
    return store.get(keys.audit_head), store.hgetall(keys.channels)


@pytest.mark.parametrize("role", ROLES)
async def test_generated_calls_never_fail_conform_and_refusals_change_nothing(
    role: str,
    dp_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
) -> None:
    await publish(dp_services, openai_spec(), CH)
    secret = ADMIN_TOKEN
    if role != "admin":
        _, secret = await dp_services.keyring.create(f"st-{role}", role, ["*"], OPERATOR, "")
    gateway = start_gateway()
    # The key is ours to send: a generated Authorization header would be replaced by it, and a
    # call it made "invalid" would then be valid (and rightly accepted).
    config = SchemathesisConfig.from_dict({"generation": {"with-security-parameters": False}})
    schema = schemathesis.openapi.from_dict(document(), config=config)
    auth = {"Authorization": f"Bearer {secret}"}
    cases: Counter[str] = Counter()
    statuses: Counter[tuple[str, int]] = Counter()
    with redis.Redis.from_url(dp_settings.redis_url) as store:
        for result in schema.get_all_operations():
            assert isinstance(result, Ok), result  # the document itself is valid
            operation = result.ok()
            if operation.path in UNATTACKED:
                continue
            generated = st.one_of(
                operation.as_strategy(GenerationMode.POSITIVE),
                operation.as_strategy(GenerationMode.NEGATIVE),
            )

            @settings(LIVE, max_examples=EXAMPLES[role], derandomize=True, database=None)
            @given(generated)
            def one_call(case: Any) -> None:
                label = f"{case.method} {case.operation.path}"
                before = state(store, dp_services)
                response = case.call(base_url=gateway.url, headers=auth, timeout=30)
                cases[label] += 1
                statuses[(label, response.status_code)] += 1
                case.validate_response(response, checks=CHECKS, headers=auth)
                if response.status_code >= 400:
                    assert state(store, dp_services) == before, (label, response.text[:300])

            one_call()
    with httpx.Client(base_url=gateway.url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as http:  # fmt: skip
        verified = http.get("/admin/audit/verify")
        assert verified.json()["ok"] is True, verified.text
    assert len(cases) >= 40 and all(n >= 1 for n in cases.values())
    print(f"\n{role}: {sum(cases.values())} cases", dict(sorted(statuses.items())))
