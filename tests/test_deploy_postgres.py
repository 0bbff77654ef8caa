"""The deployment files with PostgreSQL: compose runs one for lineage, and the k8s overlay
adds it to the base (which stays Redis-only), its password always from a Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
OVERLAY = DEPLOY / "k8s" / "postgres"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def test_compose_gives_every_replica_the_postgres_lineage_store() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert services["postgres"]["image"].startswith("postgres:")
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    for name in ("gateway-a", "gateway-b"):
        env = services[name]["environment"]
        assert env["GATEWAY_LINEAGE_DSN"].startswith("postgresql://gateway:${")
        assert "@postgres:5432/" in env["GATEWAY_LINEAGE_DSN"]
    assert "postgres-data" in compose["volumes"]


def test_the_k8s_overlay_adds_postgres_to_the_base_and_reads_the_password_from_a_secret() -> None:
    kustomization = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert "../base" in kustomization["resources"]
    kinds = {d["kind"] for d in documents(OVERLAY / "postgres.yaml")}
    assert kinds == {"StatefulSet", "Service"}
    (statefulset,) = [d for d in documents(OVERLAY / "postgres.yaml") if d["kind"] == "StatefulSet"]
    env = {e["name"]: e for e in statefulset["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "gateway-postgres"
    patch = yaml.safe_load((OVERLAY / "gateway-dsn.yaml").read_text())
    gateway_env = {e["name"]: e for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "valueFrom" in gateway_env["GATEWAY_POSTGRES_PASSWORD"]
    # Kubernetes expands $(VAR) from a variable defined before it: the DSN holds no secret.
    assert "$(GATEWAY_POSTGRES_PASSWORD)" in gateway_env["GATEWAY_LINEAGE_DSN"]["value"]
    names = [e["name"] for e in patch["spec"]["template"]["spec"]["containers"][0]["env"]]
    assert names.index("GATEWAY_POSTGRES_PASSWORD") < names.index("GATEWAY_LINEAGE_DSN")
