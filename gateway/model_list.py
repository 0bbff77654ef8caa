"""What ``GET /v1/models[/{model}]`` answers, in OpenAI's shapes: the data plane builds its
answer with these models and the admin API's OpenAPI document states them (both import
this module, which imports neither)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict


class ModelObject(BaseModel):
    """A channel the key may call, in OpenAI's model format."""

    model_config = ConfigDict(extra="forbid")
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "gateway"


class ModelList(BaseModel):
    """The channels the key may call, in OpenAI's list format."""

    model_config = ConfigDict(extra="forbid")
    object: Literal["list"] = "list"
    data: list[ModelObject]
