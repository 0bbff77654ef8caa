"""What an answer cost: the providers file's price table applied to the answer's usage.

Prices are per provider model id, in USD per 1M tokens (``prices:`` of each provider in the
providers file). Input tokens read from the provider's prompt cache are priced at
``cached_input`` (the input price when unset); the rest of the input at ``input``; the output
at ``output``. An answer whose model is unpriced, or whose usage lacks its input or output
count, has no cost (None): a guess would be worse than a gap.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gateway.config import ProvidersFile
from releases.lineage import Usage

PER_MILLION = 1_000_000
# Costs are rounded to a nano-dollar: below float noise, far below any price.
DIGITS = 9


@dataclass(frozen=True, slots=True)
class Price:
    """USD per 1M input, cached input and output tokens of one model id."""

    input: float
    output: float
    cached_input: float


class PriceTable:
    """Prices by (provider name, model id), made once at start-up from the providers file."""

    def __init__(self, prices: Mapping[tuple[str, str], Price] | None = None) -> None:
        self.prices = dict(prices or {})

    @classmethod
    def of(cls, config: ProvidersFile) -> PriceTable:
        return cls(
            {
                (provider, model_id): Price(
                    p.input, p.output, p.input if p.cached_input is None else p.cached_input
                )
                for provider, settings in config.providers.items()
                for model_id, p in settings.prices.items()
            }
        )

    def cost(self, provider: str | None, model_id: str | None, usage: Usage | None) -> float | None:
        """The answer's cost in USD, or None (unpriced, or usage unknown)."""
        if usage is None or provider is None or model_id is None:
            return None
        price = self.prices.get((provider, model_id))
        if price is None or usage.input_tokens is None or usage.output_tokens is None:
            return None
        cached = min(usage.cached_input_tokens or 0, usage.input_tokens)
        micro = (
            (usage.input_tokens - cached) * price.input
            + cached * price.cached_input
            + usage.output_tokens * price.output
        )
        return round(micro / PER_MILLION, DIGITS)
