"""The document's answers of the endpoints that need the PostgreSQL lineage store: the
export streams in the media types the document states for it (JSON lines, CSV), and search
and the audit mirror check answer what their schemas say."""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest

from gateway.config import Settings
from gateway.registry_services import RegistryServices
from releases.lineage.postgres import LineageArchive
from tests.factories import ADMIN_TOKEN
from tests.live import LiveServer
from tests.openapikit import document, problems
from tests.stack import openai_spec, publish
from tests.test_lineage import CH
from tests.test_lineage_postgres import archive, pg_settings, schema, until
from tests.test_lineage_search import send

__all__ = ["archive", "pg_settings", "schema"]  # fixtures shared with the sink's tests

pytestmark = pytest.mark.single_redis("the lineage store is PostgreSQL")
AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def test_export_streams_the_media_types_the_document_states(
    pg_settings: Settings,
    dp_services: RegistryServices,
    start_gateway: Callable[..., LiveServer],
    archive: LineageArchive,
) -> None:
    await publish(dp_services, openai_spec(), CH)
    gateway = start_gateway(pg_settings)
    sent = {send(gateway) for _ in range(3)}

    async def archived() -> bool:
        return await archive.count() >= len(sent)

    await until(archived)
    doc = document()
    stated = doc["paths"]["/admin/lineage/export"]["get"]["responses"]["200"]["content"]
    with httpx.Client(base_url=gateway.url, headers=AUTH) as http:
        for kind, media in (("jsonl", "application/x-ndjson"), ("csv", "text/csv")):
            answer = http.get("/admin/lineage/export", params={"channel": CH, "format": kind})
            assert answer.status_code == 200, answer.text
            assert answer.headers["content-type"].split(";")[0] == media and media in stated
            assert answer.headers["x-gateway-export-total"] == str(len(sent))
            assert not problems(doc, "GET", "/admin/lineage/export", answer)
        page = http.get("/admin/lineage", params={"channel": CH})
        assert page.json()["store"] == "postgres"
        assert {r["response_id"] for r in page.json()["records"]} == sent
        assert not problems(doc, "GET", "/admin/lineage", page)
        verified = http.get("/admin/audit/verify", params={"mirror": "1"})
        assert verified.status_code == 200 and "chain_ok" in verified.json()
        assert not problems(doc, "GET", "/admin/audit/verify", verified)
