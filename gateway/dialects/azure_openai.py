"""Azure OpenAI, spoken by ``kind: azure_openai`` providers: OpenAI's Chat Completions API
at a deployment's URL, with the key in ``api-key`` and the ``api-version`` the providers
file names. A provider kind only (callers use the OpenAI front door).

A release pins the deployment as ``model.id`` and the model version it serves as
``model.revision``. Everything but the URL and the key header is OpenAI's
(``gateway.dialects.openai_chat``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.dialects.openai_chat import OpenAIChat


class AzureOpenAIChat(OpenAIChat):
    """OpenAI's Chat Completions API as Azure OpenAI serves it, one deployment per URL."""

    kind = "azure_openai"
    upstream_path = "/openai/deployments/{deployment}/chat/completions"

    def upstream_call(self, base_url: str, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        """The deployment lives in the URL; ``base_url`` carries the provider's
        ``?api-version=`` (``gateway.providers`` puts it there), which goes last."""
        base, _, query = base_url.partition("?")
        path = self.upstream_path.format(deployment=body["model"])
        return f"{base}{path}?{query}" if query else base + path, body

    def upstream_headers(self, api_key: str | None, caller: Mapping[str, str]) -> dict[str, str]:
        headers = {"content-type": "application/json"}
        if api_key:
            headers["api-key"] = api_key
        return headers


AZURE_OPENAI = AzureOpenAIChat()
