"""Provenance: what produced a model (base model, fine-tune job, training data snapshots by
content hash, hyperparameters, training code commit, seed, when), pinned in a release.

It is part of the release spec (``releases.spec``) and of its content digest: a model trained
on another data snapshot is another release. Hashes are checked as hashes.
"""

from __future__ import annotations

import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from pydantic_core import PydanticCustomError

STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)
# Hashes are lowercase hex (uppercase is folded), so one snapshot is one release however it
# was typed. A model revision is a git commit (Hugging Face), a weights sha256 or an Ollama
# digest ("sha256:" + 64 hex); a training code commit a git sha-1 or sha-256 commit id.
SHA256_PATTERN = r"^[0-9a-f]{64}$"
REVISION_PATTERN = r"^([0-9a-f]{40}|(sha256:)?[0-9a-f]{64})$"
COMMIT_PATTERN = r"^([0-9a-f]{40}|[0-9a-f]{64})$"


def lowercase(value: Any) -> Any:
    """Hex digests compare as text: fold case before the pattern is checked."""
    return value.lower() if isinstance(value, str) else value


class TrainingData(BaseModel):
    """One data snapshot that trained the model: where it is, and its content hash."""

    model_config = STRICT

    uri: str = Field(min_length=1)
    sha256: str = Field(pattern=SHA256_PATTERN)
    records: int | None = Field(default=None, ge=0)

    _sha256_lowercase = field_validator("sha256", mode="before")(lowercase)


class Provenance(BaseModel):
    """What produced the model: base model, fine-tune job, data snapshots by hash,
    hyperparameters, training code commit, seed and when. All of it is in the digest."""

    model_config = STRICT

    base_model: str | None = Field(default=None, min_length=1)
    fine_tune_id: str | None = Field(default=None, min_length=1)
    training_data: list[TrainingData] | None = None
    hyperparameters: dict[str, Any] | None = None
    code_commit: str | None = Field(default=None, pattern=COMMIT_PATTERN)
    seed: int | None = Field(default=None, ge=-(2**63), le=2**63 - 1)
    # ISO 8601: a date, or a time kept in UTC (see _iso_8601).
    produced_at: str | None = None

    _commit_lowercase = field_validator("code_commit", mode="before")(lowercase)

    @field_validator("training_data", "hyperparameters")
    @classmethod
    def _none_when_empty(cls, value: Any) -> Any:
        return value or None

    @field_validator("produced_at", mode="before")
    @classmethod
    def _iso_8601(cls, value: Any) -> Any:
        # One spelling per moment (UTC, "Z"), so the same time written another way (a zone
        # offset, or unquoted YAML, which reads as a datetime) is the same release.
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            return value.isoformat()
        if isinstance(value, str):
            try:
                if len(value) == len("2025-01-31"):
                    return datetime.date.fromisoformat(value).isoformat()
                value = datetime.datetime.fromisoformat(value)
            except ValueError:
                raise PydanticCustomError(
                    "iso_8601", "must be an ISO 8601 date or time (2025-01-31T12:00:00Z)"
                ) from None
        if isinstance(value, datetime.datetime):
            if value.tzinfo is None:  # a time without a zone is UTC, as everywhere here
                value = value.replace(tzinfo=datetime.UTC)
            return value.astimezone(datetime.UTC).isoformat().replace("+00:00", "Z")
        return value

    def is_empty(self) -> bool:
        return not self.model_dump(exclude_none=True)
