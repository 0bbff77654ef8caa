"""Configuration: ``GATEWAY_*`` environment variables and the providers file.

Only providers named in the providers file are ever called; a release names one of them.
"""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import yaml
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from releases.signing import load_private_key
from releases.spec import OLLAMA_TAGGED

# Providers whose public ids carry a date when pinned (gpt-4o-2024-08-06, gpt-4-0613,
# claude-3-5-sonnet-20241022); their undated ids are aliases that move. OpenAI's embedding
# models are the exception: undated, and never changed under their name (a changed model
# would void every index built with it).
OPENAI_DATED = r".+-(\d{4}-\d{2}-\d{2}|\d{4})|text-embedding-(3-small|3-large|ada-002)"
ANTHROPIC_DATED = r".+-\d{8}"
OPENAI_HOST = "api.openai.com"
# Gemini's stable ids end in a three-digit version (gemini-2.0-flash-001); gemini-2.0-flash
# and *-latest are aliases Google moves.
GEMINI_NUMBERED = r".+-\d{3}"
# A header name is an HTTP token (RFC 9110 5.1).
HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
# Fixed headers may not carry a key (keys live in environment variables, and one here would
# override or double the key header) nor replace what the gateway sets on every call.
RESERVED_HEADERS = frozenset(
    {"authorization", "proxy-authorization", "api-key", "x-api-key", "x-goog-api-key",
     "cookie", "host", "content-type", "content-length", "transfer-encoding", "connection",
     "te", "upgrade", "anthropic-version", "traceparent", "tracestate"}
)  # fmt: skip


class TimeoutsConfig(BaseModel):
    """Seconds to connect, to wait between bytes read, and to wait for a pooled connection."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect: float = Field(default=5.0, gt=0)
    read: float = Field(default=120.0, gt=0)
    pool: float = Field(default=10.0, gt=0)


class CircuitConfig(BaseModel):
    """Outlier detection of one provider: ejected after ``failures`` failures in a row, for
    ``base_ejection`` seconds times the number of ejections since it last answered well."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    failures: int = Field(default=5, ge=1)
    base_ejection: float = Field(default=30.0, gt=0)
    max_ejection: float = Field(default=300.0, gt=0)


class ModelPrice(BaseModel):
    """What one model id costs, in USD per 1M tokens (gateway/pricing.py applies it).
    ``cached_input`` prices input tokens read from the provider's prompt cache; unset, they
    cost what other input tokens cost."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    input: float = Field(ge=0)
    output: float = Field(ge=0)
    cached_input: float | None = Field(default=None, ge=0)


class ProviderConfig(BaseModel):
    """One upstream: its API kind, base URL, where its key comes from, and its limits."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: Literal["openai", "anthropic", "gemini", "azure_openai"]
    base_url: str = Field(pattern=r"^https?://")
    # Azure OpenAI's api-version query parameter (2024-10-21): required for that kind only.
    api_version: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]+$")
    api_key_env: str | None = None
    timeouts: TimeoutsConfig = TimeoutsConfig()
    max_connections: int = Field(default=256, ge=1)
    # A model id must fully match this to count as pinned. Default: dated ids on OpenAI's and
    # Anthropic's own APIs, anything but "latest" on self-hosted OpenAI-compatible servers.
    pinned_model: str | None = None
    # An Ollama server (kind openai): ids must carry a tag unless pinned_model says otherwise.
    # Opted into, as nothing in an OpenAI-compatible URL or id says which server is behind it.
    ollama: bool = False
    # Releases of this provider must pin model.revision: for self-hosted servers (vLLM, TGI,
    # Ollama) whose model ids are names, and whose weights can be replaced under one name.
    require_revision: bool = False
    # The answer header in which the server (or a proxy in front of it) reports the weights
    # revision it serves; compared with model.revision. None of vLLM, TGI or Ollama sends one.
    revision_header: str | None = Field(default=None, pattern=r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
    # Fixed extra headers sent on every call to this provider (OpenAI-Organization,
    # OpenAI-Project); a header a call sets itself (a caller's anthropic-beta) wins.
    headers: dict[str, str] = {}

    @field_validator("headers")
    @classmethod
    def _headers_are_sendable(cls, headers: dict[str, str]) -> dict[str, str]:
        if len({name.lower() for name in headers}) < len(headers):
            raise ValueError("a header is named twice (names are case-insensitive)")
        for name, value in headers.items():
            if not HEADER_NAME.match(name):
                raise ValueError(f"header name {name!r} is not an HTTP token")
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(
                    f"header {name!r} is set by the gateway itself (keys go in api_key_env)"
                )
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name!r}: a value may not hold CR, LF or NUL")
            try:
                value.encode("latin-1")
            except UnicodeEncodeError:
                raise ValueError(f"header {name!r}: the value must be latin-1 text") from None
        return headers

    # Retries after a connect error, a timeout, 429 or 5xx (gateway/proxy/retries.py).
    retries: int = Field(default=2, ge=0, le=10)
    circuit: CircuitConfig = CircuitConfig()
    # Provider model id -> its price (USD per 1M tokens): each answer's cost goes into its
    # lineage record and gateway_cost_usd_total; a model not listed is unpriced (cost None).
    prices: dict[str, ModelPrice] = {}

    @model_validator(mode="after")
    def _api_version_for_azure_only(self) -> ProviderConfig:
        if self.kind == "azure_openai" and self.api_version is None:
            raise ValueError('kind azure_openai needs api_version (e.g. "2024-10-21")')
        if self.kind != "azure_openai" and self.api_version is not None:
            raise ValueError(f"api_version is for kind azure_openai, not {self.kind}")
        return self

    def call_base_url(self) -> str:
        """The base URL the dialect builds calls on; Azure's carries its api-version."""
        base = self.base_url.rstrip("/")
        return f"{base}?api-version={self.api_version}" if self.api_version else base

    def api_key(self) -> str | None:
        """The provider's key, read from the environment variable the file names."""
        return os.environ.get(self.api_key_env) if self.api_key_env else None

    def pinned_pattern(self) -> re.Pattern[str]:
        if self.pinned_model is not None:
            return re.compile(self.pinned_model)
        if self.ollama:
            return re.compile(OLLAMA_TAGGED)
        if self.kind == "anthropic":
            return re.compile(ANTHROPIC_DATED)
        if self.kind == "gemini":
            return re.compile(GEMINI_NUMBERED)
        if urlsplit(self.base_url).hostname == OPENAI_HOST:
            return re.compile(OPENAI_DATED)
        return re.compile(r".+")


class ProvidersFile(BaseModel):
    """The providers file named by ``GATEWAY_CONFIG`` (YAML)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    providers: dict[str, ProviderConfig] = {}

    @classmethod
    def load(cls, path: Path | None) -> ProvidersFile:
        if path is None:
            return cls()
        try:
            with path.open() as stream:  # a stream, so YAML errors name the file
                raw = yaml.safe_load(stream) or {}
            return cls.model_validate(raw)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ConfigError(f"cannot use providers file {path}: {exc}") from exc

    def pinned_models(self) -> dict[str, re.Pattern[str]]:
        return {name: p.pinned_pattern() for name, p in self.providers.items()}

    def revision_required(self) -> frozenset[str]:
        """The providers whose releases must pin ``model.revision``."""
        return frozenset(name for name, p in self.providers.items() if p.require_revision)


class ConfigError(Exception):
    """The configuration cannot be used; the message says which part and why."""


class Settings(BaseSettings):
    """Everything the gateway reads from its environment (``GATEWAY_*``)."""

    model_config = SettingsConfigDict(env_prefix="GATEWAY_", extra="ignore")

    redis_url: str = "redis://127.0.0.1:6379/0"
    # Cluster: any node's address in redis_url (or a redis+cluster:// URL) and this set.
    redis_cluster: bool = False
    # Sentinel: "host:port,host:port" and the master's name; redis_url is then unused.
    redis_sentinels: str = ""
    redis_sentinel_master: str = "mymaster"
    # Registry changes (and lineage batches) count as done only once this many replicas hold
    # them (Redis WAIT); fewer within the timeout: the change answers 503 not_durable. 0: off.
    redis_min_replicas_ack: int = Field(default=0, ge=0)
    redis_replica_ack_timeout_ms: int = Field(default=1000, ge=1)
    # Seconds a Redis command (or a connect) may take before it fails: a frozen Redis then
    # costs an admin request a 503, not a hang. Waits for replicas (WAIT) get theirs on top;
    # the subscription that announces changes waits for them without a limit.
    redis_timeout: float = Field(default=5.0, gt=0)
    # Registry keys live under "{prefix}"; several gateways can share a Redis with other prefixes.
    redis_prefix: str = Field(default="gw", pattern=r"^[A-Za-z0-9_.-]+$")
    config: Path | None = None
    admin_token: SecretStr | None = None
    signing_key: SecretStr | None = None
    # A throwaway setup (a laptop, a test): without a signing key, sign with one made at
    # start-up, which no other process and no restart trusts. Never for a shared Redis.
    dev: bool = False
    # Public keys (base64, comma-separated) of earlier signing keys whose entries still verify.
    trusted_keys: str = ""
    max_admin_body_bytes: int = 1_048_576
    # Data-plane request bodies above this get 413 (images and long contexts make them big).
    max_body_bytes: int = 8_388_608
    # A request whose head (request line and headers) passes this gets 431 and its connection
    # is closed, before more of it is read (gateway/bounded_http.py).
    max_header_bytes: int = Field(default=65_536, ge=1024)
    # Shadow calls waiting beyond this are dropped (and counted), never queued without bound.
    shadow_queue_size: int = Field(default=1000, ge=1)
    shadow_concurrency: int = Field(default=16, ge=1)
    # "auto": OTLP when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none; or "console", "otlp", "none".
    trace_exporter: Literal["auto", "none", "console", "otlp"] = "auto"
    # Off only to measure what lineage costs (benchmarks); nothing else should turn it off.
    lineage_enabled: bool = True
    # Lineage records Redis cannot take are kept here (one file per process) until it can.
    lineage_spill_dir: Path = Path("lineage-spill")
    # How long a lineage record is kept: in PostgreSQL (whole day partitions dropped) when
    # lineage_dsn is set, else in Redis (the keys' TTL).
    lineage_retention_days: int = Field(default=30, ge=1)
    # The long-term lineage store (releases/lineage/postgres.py): a PostgreSQL DSN, and the
    # schema its tables live in. Unset: lineage lives in Redis only.
    lineage_dsn: str | None = None
    lineage_schema: str = Field(default="gateway", pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    # Seconds a record stays in Redis (the hot window); default 24 h with a DSN, else
    # lineage_retention_days. Records leave Redis only once PostgreSQL has them.
    lineage_redis_retention: int | None = Field(default=None, ge=60)
    # Records waiting for Redis beyond this go to the spill file rather than memory.
    lineage_buffer_size: int = Field(default=10_000, ge=1)
    lineage_flush_interval: float = Field(default=0.05, gt=0)
    # Each replica reports what it serves every heartbeat_interval seconds (and after every
    # snapshot reload); a report expires after heartbeat_ttl, and the replica counts as gone.
    heartbeat_interval: float = Field(default=1.0, gt=0)
    heartbeat_ttl: float = Field(default=5.0, gt=0)
    # The drift watch: every drift_interval seconds (0: off) one replica per gated channel runs
    # the gate's golden set against the stable release and compares with the promotion's eval;
    # a drop of more than drift_tolerance points (unless the gate sets its own) is recorded,
    # and POSTed to drift_webhook when one is set.
    drift_interval: float = Field(default=0.0, ge=0)
    drift_tolerance: float = Field(default=5.0, ge=0, le=100)
    drift_webhook: str | None = Field(default=None, pattern=r"^https?://")
    drift_concurrency: int = Field(default=4, ge=1, le=32)
    # The collector's young-generation threshold once started (gateway/heap.py; CPython's
    # default is 700); start-up objects are also frozen out of collections. 0: leave it alone.
    gc_threshold: int = Field(default=10_000, ge=0)
    # Allocations up to this many bytes stay in glibc's heap, and its free top up to twice
    # that (gateway/heap.py: page faults were half the CPU of a 5 MB request). 0: glibc's own.
    malloc_mmap_threshold: int = Field(default=67_108_864, ge=0, le=536_870_912)
    # At shutdown, eval runs still going (their caller may have hung up) get this many seconds
    # to finish and be recorded; any still running then is cancelled, and records nothing.
    eval_shutdown_grace: float = Field(default=30.0, ge=0)
    # The operator console (/console, gateway/console/) signs its session cookies with this:
    # the same on every replica and worker, like the signing key. Unset: the console is off.
    console_secret: SecretStr | None = None
    # A console session ends this many seconds after sign-in (or at once, when its key goes).
    console_session_ttl: int = Field(default=28_800, ge=60)
    # Seconds a chat request may take to get an answer started, retries and fallbacks
    # included; retries back off from retry_backoff seconds, doubling, up to retry_backoff_max.
    request_deadline: float = Field(default=300.0, gt=0)
    retry_backoff: float = Field(default=0.25, ge=0)
    retry_backoff_max: float = Field(default=4.0, ge=0)
    # Each replica adds what it counted against key and channel limits to the fleet's
    # counters in Redis, and reads their totals back, every this many seconds: the shorter,
    # the less a fleet can overshoot a limit (README: key limits and budgets).
    limits_sync_interval: float = Field(default=0.1, gt=0)
    # Judging slices (releases/analysis): how often each replica adds its requests to the
    # shared per-minute statistics; how often the rollout driver looks at its rollouts, and
    # where it POSTs an abort (or a pause) when set.
    slice_stats_interval: float = Field(default=1.0, gt=0)
    rollout_tick: float = Field(default=5.0, gt=0)
    rollout_webhook: str | None = Field(default=None, pattern=r"^https?://")

    @model_validator(mode="after")
    def _heartbeat_outlives_its_interval(self) -> Settings:
        if self.heartbeat_ttl <= self.heartbeat_interval:
            raise ValueError(
                "GATEWAY_HEARTBEAT_TTL must be longer than GATEWAY_HEARTBEAT_INTERVAL "
                "(a few intervals), or live replicas would drop out between beats"
            )
        return self

    def signing_key_text(self) -> str | None:
        """The signing key; None (sign with a throwaway key) only under ``GATEWAY_DEV``.
        Replicas with throwaway keys write audit entries that no verifier trusts."""
        if self.signing_key is not None and self.signing_key.get_secret_value():
            text = self.signing_key.get_secret_value()
            try:
                load_private_key(text)  # a key that cannot sign is said at start-up, in a line
            except ValueError as exc:
                message = str(exc).split(". ")[0]  # cryptography's own text runs on with ASN.1
                if "GATEWAY_SIGNING_KEY" not in message:
                    message = f"GATEWAY_SIGNING_KEY cannot be used: {message}"
                raise ConfigError(message) from None
            return text
        if self.dev:
            return None
        raise ConfigError(
            "GATEWAY_SIGNING_KEY is not set; make one with: export GATEWAY_SIGNING_KEY="
            "$(python -c 'from releases.signing import generate_key_text as g; print(g())')"
            " and give every replica the same (GATEWAY_DEV=1 signs with a throwaway key)"
        )

    def console_secret_text(self) -> str | None:
        """The console's cookie secret; None: the console is off (it answers 404 saying so)."""
        if self.console_secret is None or not self.console_secret.get_secret_value():
            return None
        text = self.console_secret.get_secret_value()
        if len(text) < 32:
            raise ConfigError(
                "GATEWAY_CONSOLE_SECRET is too short to sign sessions with: give every replica "
                "the same 32 characters or more, e.g. $(python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))')"
            )
        return text

    def lineage_redis_ttl(self) -> int:
        """Seconds a lineage record's key lives in Redis (see lineage_redis_retention)."""
        if self.lineage_redis_retention is not None:
            return self.lineage_redis_retention
        return 86_400 if self.lineage_dsn else self.lineage_retention_days * 86_400

    def providers(self) -> ProvidersFile:
        return ProvidersFile.load(self.config)

    def trusted_public_keys(self) -> list[Ed25519PublicKey]:
        try:
            return [
                Ed25519PublicKey.from_public_bytes(base64.b64decode(k.strip(), validate=True))
                for k in self.trusted_keys.split(",")
                if k.strip()
            ]
        except ValueError as exc:
            raise ConfigError(
                f"GATEWAY_TRUSTED_KEYS: each key must be a base64 raw Ed25519 public key ({exc})"
            ) from exc
