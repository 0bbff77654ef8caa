"""The data plane: OpenAI and Anthropic endpoints that resolve a channel to its release,
inject the release, forward to the provider and tag every response."""
