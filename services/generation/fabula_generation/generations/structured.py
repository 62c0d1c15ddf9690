"""A model call answered with one JSON document (structured output), as the
GenerationRecorder records it: the same attributes as a GenerationCall
(`id`, `request` with user, purpose and subject, `provider`,
`reservation_id`, `delivery`, `reserved`, `duration_ms`,
`estimated_prompt_tokens()` and `usage()`). Story suggestions and picture
stories are such calls."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from typing import Any, TypeVar

from fabula_common.errors import UpstreamError

from fabula_generation.generations.domain import Delivery, Outcome, Usage
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.text import count_tokens
from fabula_generation.providers import Completion, GenerationProvider, StructuredRequest
from fabula_generation.providers.base import prompt_text

log = logging.getLogger(__name__)
T = TypeVar("T")


class StructuredCall:
    # Extra prompt tokens counted for what is not text (an image), before
    # the provider reports its own figures.
    extra_prompt_tokens = 0

    def __init__(
        self,
        request: Any,
        question: StructuredRequest,
        provider: GenerationProvider,
        generation_id: uuid.UUID,
        *,
        delivery: Delivery = Delivery.on_completion,
    ) -> None:
        self.id = generation_id
        # Reserved under the generation's id: its usage event settles it.
        self.reservation_id = str(generation_id)
        # True once billing granted it.
        self.reserved = False
        self.request = request
        self.question = question
        self.provider = provider
        self.delivery = delivery
        self.model_called = False
        self.completion: Completion | None = None
        self._started = time.monotonic()

    @property
    def duration_ms(self) -> int:
        return int((time.monotonic() - self._started) * 1000)

    def estimated_prompt_tokens(self) -> int:
        return count_tokens(prompt_text(self.question.messages())) + self.extra_prompt_tokens

    def usage(self, outcome: Outcome) -> Usage:
        """What the provider reported; else counted here. A call that got no
        answer (refused, timed out) processed nothing that is billed."""
        if not self.model_called or self.completion is None:
            return Usage(0, 0, False)
        reported = self.completion.usage
        if reported is not None:
            return Usage(reported.prompt_tokens, reported.completion_tokens, False)
        return Usage(
            prompt_tokens=self.estimated_prompt_tokens(),
            completion_tokens=count_tokens(self.completion.text),
            estimated=not self.provider.counts_tokens_exactly,
        )

    async def ask(self) -> Completion:
        """The one provider call; its answer is kept, so its tokens are billed
        whatever the caller then makes of it."""
        self.model_called = True
        self.completion = await self.provider.complete_json(self.question)
        return self.completion

    async def answer(self, parse: Callable[[str], T], what: str) -> T:
        """Ask and read the answer with `parse`; UpstreamError (after the
        answer is kept, so its tokens are billed) when it was cut off or is
        no valid document (`what` names it in the message and the log)."""
        completion = await self.ask()
        if completion.cut_off:
            raise UpstreamError(f"the model's {what} were cut off before they were complete")
        try:
            return parse(completion.text)
        except UpstreamError as exc:
            log.warning(
                "%s %s: unusable answer from %s/%s (%s): %.300r",
                what,
                self.id,
                self.provider.name,
                self.provider.model,
                exc.message,
                completion.text,
            )
            raise


async def reserve_and_start(
    recorder: Any, meter: Meter, call: StructuredCall, *, cost_only: bool
) -> None:
    """Reserve the call's quota under its id, then record it as started. A
    refusal (QuotaExceeded) costs nothing and records nothing; a row that
    cannot be written gives the granted reservation back at once (no usage
    event would settle it; else billing's expiry would)."""
    await meter.reserve(call.request.user_id, call.reservation_id, cost_only=cost_only)
    call.reserved = True
    try:
        await recorder.start(call)
    except BaseException:
        recorder.track(
            meter.release(call.request.user_id, call.reservation_id),
            f"drop-reservation-{call.id}",
        )
        raise
