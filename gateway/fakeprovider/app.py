"""The fake provider's app factory and route table."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.routing import Route

from gateway.fakeprovider import anthropic_api, control, embeddings_api, gemini_api, openai_api
from gateway.fakeprovider.provider import FakeProvider


def create_fake_provider(provider: FakeProvider | None = None) -> Starlette:
    """Build the fake upstream. Pass ``provider`` to choose its limits or inspect its state
    directly; by default each app gets a fresh one."""
    app = Starlette(
        routes=[
            Route("/v1/chat/completions", openai_api.chat_completions, methods=["POST"]),
            # Azure OpenAI: OpenAI's chat at a deployment's URL.
            Route(
                "/openai/deployments/{deployment}/chat/completions",
                openai_api.chat_completions,
                methods=["POST"],
            ),
            Route("/v1/models", openai_api.list_models, methods=["GET"]),
            Route("/v1/messages", anthropic_api.create_message, methods=["POST"]),
            *embeddings_api.routes,
            Route("/v1beta/models/{call}", gemini_api.generate_content, methods=["POST"]),
            control.routes,
        ]
    )
    app.state.fake_provider = provider if provider is not None else FakeProvider()
    return app
