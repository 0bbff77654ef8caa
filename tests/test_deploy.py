"""The deployment files: parsed and checked for what keeps replicas safe to run and stop."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from gateway.config import ProvidersFile, Settings

DEPLOY = Path(__file__).resolve().parent.parent / "deploy"
BASE = DEPLOY / "k8s" / "base"


def manifests() -> dict[str, dict[str, Any]]:
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    found = {}
    for name in kustomization["resources"]:
        for document in yaml.safe_load_all((BASE / name).read_text()):
            found[document["kind"]] = document
    return found


def gateway_container() -> dict[str, Any]:
    container: dict[str, Any] = manifests()["Deployment"]["spec"]["template"]["spec"]["containers"][
        0
    ]
    return container


def image_command() -> list[str]:
    """The image's ``CMD`` (exec form), what a service without a command of its own runs."""
    line = next(
        line for line in (DEPLOY / "Dockerfile").read_text().splitlines() if line.startswith("CMD ")
    )
    command: list[str] = json.loads(line.removeprefix("CMD "))
    return command


def test_the_deployment_has_readiness_liveness_and_a_drain_hook() -> None:
    container = gateway_container()
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["lifecycle"]["preStop"]["sleep"]["seconds"] > 0
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    drain = float(container["args"][container["args"].index("--drain-seconds") + 1])
    # Shutdown runs after the drain: eval runs still going get their grace, then lineage is
    # flushed. A pod killed before that loses records.
    evals = Settings.model_fields["eval_shutdown_grace"].default
    assert (
        pod["terminationGracePeriodSeconds"]
        > container["lifecycle"]["preStop"]["sleep"]["seconds"] + drain + evals
    )


def test_compose_gives_a_stopping_replica_its_drain_and_eval_grace() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    gateway = compose["services"]["gateway-a"]
    command = gateway.get("command") or image_command()
    drain = float(command[command.index("--drain-seconds") + 1])
    grace = float(gateway["stop_grace_period"].removesuffix("s"))
    assert grace > drain + Settings.model_fields["eval_shutdown_grace"].default
    fake = compose["services"]["fake-provider"]
    assert "9100" in " ".join(fake["healthcheck"]["test"])  # not the image's own, on 8080


def test_the_deployment_sets_resource_limits_and_runs_unprivileged() -> None:
    container = gateway_container()
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {"cpu", "memory"} <= set(container["resources"]["limits"])
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_secrets_are_referenced_never_written() -> None:
    env = {e["name"]: e for e in gateway_container()["env"]}
    for name in ("GATEWAY_ADMIN_TOKEN", "GATEWAY_SIGNING_KEY", "OPENAI_API_KEY"):
        assert "value" not in env[name] and env[name]["valueFrom"]["secretKeyRef"]["name"]


def test_disruption_budget_autoscaler_service_and_providers() -> None:
    found = manifests()
    assert found["PodDisruptionBudget"]["spec"]["minAvailable"] >= 1
    assert found["HorizontalPodAutoscaler"]["spec"]["minReplicas"] >= 2
    assert found["Service"]["spec"]["ports"][0]["targetPort"] == "http"
    kustomization = yaml.safe_load((BASE / "kustomization.yaml").read_text())
    generated = kustomization["configMapGenerator"][0]
    for file in generated["files"]:
        ProvidersFile.model_validate(
            yaml.safe_load((BASE / file).read_text())
        )  # a valid providers file


def test_the_image_runs_unprivileged_with_a_healthcheck() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "USER 10001" in dockerfile and "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "--drain-seconds" in dockerfile and "STOPSIGNAL SIGTERM" in dockerfile


def test_compose_runs_two_replicas_on_redis_with_aof() -> None:
    compose = yaml.safe_load((DEPLOY / "compose" / "compose.yaml").read_text())
    services = compose["services"]
    assert "--appendonly" in services["redis"]["command"]
    gateways = [s for name, s in services.items() if name.startswith("gateway-")]
    assert len(gateways) == 2
    assert all(g["environment"]["GATEWAY_REDIS_URL"].startswith("redis://redis:") for g in gateways)
    assert {"fake-provider", "otel-collector"} <= set(services)
    ProvidersFile.model_validate(
        yaml.safe_load((DEPLOY / "compose" / "providers.yaml").read_text())
    )


def test_the_ci_example_checks_pull_requests_and_syncs_merges() -> None:
    """deploy/ci: `sync --check` on pull requests (registers nothing), `sync` on merge, each
    with commands and flags the CLI has."""
    from gateway.cli import build_parser

    workflow = yaml.safe_load((DEPLOY / "ci" / "release-sync.yml").read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert set(triggers) == {"pull_request", "push"}
    runs = {
        name: " ".join(step.get("run", "") for step in job["steps"])
        for name, job in workflow["jobs"].items()
    }
    assert 'gateway release sync "$VERSIONS_DIR" --check' in runs["check"]
    assert "pull_request" in workflow["jobs"]["check"]["if"]
    assert "push" in workflow["jobs"]["sync"]["if"] and "--check" not in runs["sync"]
    parser = build_parser()
    parser.parse_args(["release", "sync", "releases", "--check"])
    parser.parse_args(["release", "sync", "releases", "--promote", "ch", "--reason", "r", "--name", "n"])  # fmt: skip
