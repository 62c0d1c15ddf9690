"""What a model call costs, from the configured price table."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal

from fabula_common.money import USD_QUANTUM

from fabula_generation.settings import ModelPrice, Settings

_PER_MILLION = Decimal(1_000_000)


class PriceTable:
    def __init__(self, prices: Mapping[str, ModelPrice], fallback: ModelPrice) -> None:
        self._prices = dict(prices)
        self.fallback = fallback

    @classmethod
    def from_settings(cls, settings: Settings) -> PriceTable:
        return cls(settings.price_table(), settings.fallback_price)

    def price_for(self, model: str) -> ModelPrice:
        return self._prices.get(model, self.fallback)

    def is_known(self, model: str) -> bool:
        return model in self._prices

    def cost(self, model: str, prompt_tokens: int, completion_tokens: int) -> Decimal:
        """US dollars, to the quantum money amounts are stored with."""
        price = self.price_for(model)
        amount = (
            prompt_tokens * price.prompt + completion_tokens * price.completion
        ) / _PER_MILLION
        return amount.quantize(USD_QUANTUM)
