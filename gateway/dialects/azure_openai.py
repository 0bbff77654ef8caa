"""Azure OpenAI, spoken by ``kind: azure_openai`` providers: OpenAI's Chat Completions API
at a deployment's URL, with the key in ``api-key`` and the ``api-version`` the providers
file names. A provider kind only (callers use the OpenAI front door).

A release pins the deployment as ``model.id`` and the model version it serves as
``model.version``; Azure's answers name the model that served them (``gpt-4o-2024-08-06``),
which is compared with ``model.version``. Everything but the URL, the key header and that
comparison is OpenAI's (``gateway.dialects.openai_chat``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from gateway.dialects.openai_chat import OpenAIChat

if TYPE_CHECKING:
    from gateway.injection import PreparedRelease


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

    def serves_pinned(self, release: PreparedRelease, served: str) -> bool | None:
        """Azure answers with the model's name and version (``gpt-4o-2024-08-06``): it matches
        a ``model.version`` written the same way, or a bare version (``2024-08-06``) it ends
        with; the deployment name is never what an answer names."""
        version = release.model_version
        if version is None:
            return None
        return served == version or (version[0].isdigit() and served.endswith("-" + version))


AZURE_OPENAI = AzureOpenAIChat()
