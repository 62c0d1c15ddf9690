"""Running a council: its members' providers, and one message's deliberation
(stage 1 answers, stage 2 reviews and the aggregate ranking, stage 3 the
chairman's answer, the title), each model call recorded and metered like
every other (GenerationRecorder), the message itself being the one
generation of the plan. See "The council engine" in docs/architecture.md."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field
from decimal import Decimal

from fabula.generation.v1 import council_pb2
from fabula_common.context import is_child_safe
from fabula_common.errors import AlreadyExists, FabulaError, Unavailable
from fabula_common.money import from_money, to_money

from fabula_generation.council import prompts, ranking
from fabula_generation.generations.domain import (
    ComposedPrompt,
    Delivery,
    GenerationRequest,
    Purpose,
    StoryInputs,
    Subject,
)
from fabula_generation.generations.metering import Meter
from fabula_generation.generations.pricing import PriceTable
from fabula_generation.generations.servicer import GenerationRecorder, RecordedGeneration
from fabula_generation.generations.service import (
    GenerationCall,
    complete_generation,
    stream_generation,
)
from fabula_generation.providers import (
    GenerationProvider,
    MistralProvider,
    OfflineProvider,
    OpenAICompatibleProvider,
)
from fabula_generation.safety.moderation import Moderator, WordListModerator, require_suitable
from fabula_generation.settings import Settings

STAGE_PURPOSES = {
    1: Purpose.council_stage_1,
    2: Purpose.council_stage_2,
    3: Purpose.council_stage_3,
}
# What a prompt of the council is taken to weigh when its cost is estimated
# before the call (the reservation's hold), in tokens.
ESTIMATED_PROMPT_TOKENS = 3000
SUBJECT_KIND = "conversation"
MODEL_UNAVAILABLE = "model-unavailable"


@dataclass(frozen=True)
class Member:
    """A model of the council: its configured name ("provider/model") and provider."""

    name: str
    provider: GenerationProvider


class Council:
    """The configured members, chairman and fallbacks, one provider per model."""

    def __init__(
        self,
        members: dict[str, GenerationProvider],
        member_names: Sequence[str],
        chairman: str,
        fallbacks: Sequence[str],
        size_by_plan: dict[str, int],
        follow_up_questions: int = 0,
    ) -> None:
        self._providers = members
        self.member_names = list(member_names)
        self.chairman = chairman
        self.fallbacks = list(fallbacks)
        self.size_by_plan = size_by_plan
        self.follow_up_questions = follow_up_questions

    @classmethod
    def from_settings(cls, settings: Settings) -> Council:
        return cls(
            {name: provider_for(name, settings) for name in settings.council_models},
            settings.council_member_models,
            settings.council_chairman_model,
            settings.council_fallback_models,
            settings.council_size_by_plan,
            settings.council_follow_up_questions,
        )

    def knows(self, name: str) -> bool:
        return name in self._providers

    def member(self, name: str) -> Member:
        return Member(name, self._providers[name])

    def members(self, size: int) -> list[Member]:
        """The first `size` configured members (all of them for 0)."""
        names = self.member_names[:size] if size > 0 else self.member_names
        return [self.member(name) for name in names]

    def size_for_plan(self, plan: str) -> int:
        return self.size_by_plan.get(plan, self.size_by_plan.get("free", 0))

    def chairmen(self) -> list[Member]:
        """The chairman, then its fallbacks, in order."""
        return [self.member(name) for name in dict.fromkeys([self.chairman, *self.fallbacks])]

    async def aclose(self) -> None:
        for provider in self._providers.values():
            await provider.aclose()


def provider_for(name: str, settings: Settings) -> GenerationProvider:
    """A provider for a "provider/model" name (settings validated it). An
    offline member keeps the model "offline" (free in the price table); its
    name shapes its offline text, so members differ."""
    kind, _, model = name.partition("/")
    if kind == "mistral":
        return MistralProvider.from_settings(settings.model_copy(update={"mistral_model": model}))
    if kind == "openai":
        return OpenAICompatibleProvider.from_settings(
            settings.model_copy(update={"openai_model": model})
        )
    return OfflineProvider(token_delay_seconds=settings.offline_token_delay_ms / 1000)


class _NoModel:
    """The provider of the message's own record: no model is called under it."""

    name = "council"
    model = "council"
    is_language_model = False
    counts_tokens_exactly = True

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        return 0


# Inputs ------------------------------------------------------------------------


@dataclass(frozen=True)
class Deliberation:
    """One council message to deliberate, validated (servicer)."""

    user_id: str
    message_id: str
    conversation_id: str
    question: str
    conversation: prompts.Conversation = prompts.Conversation()
    council_size: int = 0
    want_title: bool = False
    done_answers: Sequence[council_pb2.MemberAnswer] = ()
    done_reviews: Sequence[council_pb2.MemberReview] = ()


@dataclass
class _Totals:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: Decimal = Decimal(0)

    def add(self, usage: council_pb2.StageUsage) -> None:
        self.prompt_tokens += usage.prompt_tokens
        self.completion_tokens += usage.completion_tokens
        if usage.HasField("cost"):
            self.cost += from_money(usage.cost, field="cost")


@dataclass
class _Result:
    text: str = ""
    error: str = ""
    usage: council_pb2.StageUsage = field(default_factory=council_pb2.StageUsage)


def stage_usage(recorded: RecordedGeneration | None) -> council_pb2.StageUsage:
    if recorded is None:
        return council_pb2.StageUsage()
    return council_pb2.StageUsage(
        prompt_tokens=recorded.usage.prompt_tokens,
        completion_tokens=recorded.usage.completion_tokens,
        cost=to_money(recorded.cost_usd),
        duration_ms=recorded.duration_ms,
    )


def _label_map(assignment: ranking.LabelAssignment) -> dict[str, str]:
    return {
        ranking.display_label(label): member
        for label, member in assignment.members_by_label.items()
    }


def _from_display(label: str) -> str:
    return label.removeprefix(ranking.LABEL_PREFIX).strip()


def _stored_review(review: council_pb2.MemberReview) -> ranking.Review:
    """A review stored by an earlier attempt, as the ranking logic reads it."""
    assignment = ranking.LabelAssignment(
        review.model,
        {
            _from_display(label): member
            for label, member in sorted(review.label_to_model.items())
        },
    )
    order = tuple(_from_display(label) for label in review.ranking)
    parsed = (
        ranking.ParsedRanking(order)
        if review.ranking_parsed
        else ranking.unparseable("not parsed")
    )
    return ranking.Review(assignment, parsed)


# The engine --------------------------------------------------------------------


Event = council_pb2.CouncilEvent


class CouncilEngine:
    """Runs deliberations: reserve the message, run the stages not done yet,
    record every call, then record the message (or its failure)."""

    def __init__(
        self,
        council: Council,
        recorder: GenerationRecorder,
        meter: Meter,
        prices: PriceTable,
        moderator: Moderator | None = None,
    ) -> None:
        self.council = council
        self.recorder = recorder
        self.meter = meter
        self.prices = prices
        # For child-safe accounts (see _child_safe).
        self.moderator = moderator or WordListModerator()

    def estimated_cost(self, members: Sequence[Member]) -> Decimal:
        """What the message may cost: every member answering and reviewing,
        the chairman answering and titling, at their full token allowance."""
        chairman = self.council.member(self.council.chairman).provider.model
        cost = sum(
            (
                self.prices.cost(
                    member.provider.model,
                    2 * ESTIMATED_PROMPT_TOKENS,
                    prompts.MEMBER_MAX_TOKENS + prompts.REVIEW_MAX_TOKENS,
                )
                for member in members
            ),
            Decimal(0),
        )
        return cost + self.prices.cost(
            chairman,
            2 * ESTIMATED_PROMPT_TOKENS,
            prompts.CHAIRMAN_MAX_TOKENS + prompts.TITLE_MAX_TOKENS,
        )

    async def deliberate(
        self, deliberation: Deliberation, members: Sequence[Member]
    ) -> AsyncIterator[Event]:
        d = deliberation
        started = time.monotonic()
        child_safe = is_child_safe()
        if child_safe:
            # Before anything is reserved or asked: a refused question costs nothing.
            await require_suitable(self.moderator, {"question": d.question})
        # Before any call: a plan that is spent refuses the message (QuotaExceeded).
        await self.meter.reserve(
            d.user_id, d.message_id, estimated_cost=self.estimated_cost(members)
        )
        totals = _Totals()
        # Cancelled midway, no message is recorded: the owner may resume it
        # under the same id, else billing's expiry gives the reservation back
        # (generation's record knows no call under it).
        try:
            async for event in self._stages(d, members, totals):
                if child_safe and not await self._child_safe(event):
                    continue
                yield event
        except FabulaError as exc:
            await self._record_message(d, failure=exc)
            raise
        await self._record_message(d, failure=None)
        yield Event(
            done=council_pb2.CouncilDone(
                usage=council_pb2.StageUsage(
                    prompt_tokens=totals.prompt_tokens,
                    completion_tokens=totals.completion_tokens,
                    cost=to_money(totals.cost),
                    # The deliberation's wall time (this run of it, when resumed):
                    # members work at once, so less than the sum of theirs.
                    duration_ms=int((time.monotonic() - started) * 1000),
                )
            )
        )

    async def _child_safe(self, event: Event) -> bool:
        """Whether a child-safe account's stream gets `event`. Nothing reaches
        a child before the moderation has read it: text as it is written is
        held back, and every answer, review and the chairman's answer is
        checked whole (ContentBlocked fails the message: its calls are paid,
        no generation counts)."""
        kind = event.WhichOneof("event")
        if kind == "delta":
            return False
        if kind in ("answer", "review", "chairman"):
            await require_suitable(self.moderator, {kind: getattr(event, kind).text})
        elif kind == "title":
            await require_suitable(self.moderator, {"title": event.title})
        return True

    async def _stages(
        self, d: Deliberation, members: Sequence[Member], totals: _Totals
    ) -> AsyncIterator[Event]:
        # Stage 1 ------------------------------------------------------------
        if d.done_answers:
            answers = list(d.done_answers)
            for answer in answers:
                totals.add(answer.usage)
        else:
            yield Event(stage_started=1)
            answers = []
            async for event in self._concurrently(
                [
                    (
                        member,
                        prompts.member_prompt(d.question, d.conversation, member=member.name),
                    )
                    for member in members
                ],
                d,
                stage=1,
            ):
                member, result = event if isinstance(event, tuple) else (None, None)
                if member is None:
                    yield event
                    continue
                totals.add(result.usage)
                answer = council_pb2.MemberAnswer(
                    model=member.name, text=result.text, error=result.error, usage=result.usage
                )
                answers.append(answer)
                yield Event(answer=answer)
            # In the configured order, whatever order they finished in.
            order = {member.name: index for index, member in enumerate(members)}
            answers.sort(key=lambda answer: order.get(answer.model, len(order)))
        answered = [answer for answer in answers if not answer.error]
        if not answered:
            raise Unavailable(
                "every council member failed: "
                + "; ".join(f"{answer.model}: {answer.error}" for answer in answers),
                reason=MODEL_UNAVAILABLE,
            )
        texts = {answer.model: answer.text for answer in answered}
        member_ids = [answer.model for answer in answered]

        # Stage 2 ------------------------------------------------------------
        reviews: list[ranking.Review] = []
        written: list[prompts.MemberReview] = []
        if d.done_reviews:
            for review in d.done_reviews:
                totals.add(review.usage)
                if review.error:
                    continue
                stored = _stored_review(review)
                reviews.append(stored)
                written.append(prompts.MemberReview(stored.assignment, review.text))
        else:
            yield Event(stage_started=2)
            # Every member that answered reviews (one no longer configured cannot).
            reviewers = [
                self._reviewer(member_ids, answer.model, d)
                for answer in answered
                if self.council.knows(answer.model)
            ]
            calls = [
                (
                    self.council.member(assignment.reviewer_id),
                    prompts.review_prompt(d.question, assignment, texts, d.conversation),
                )
                for assignment in reviewers
            ]
            assignments = {assignment.reviewer_id: assignment for assignment in reviewers}
            async for event in self._concurrently(calls, d, stage=2):
                member, result = event if isinstance(event, tuple) else (None, None)
                if member is None:
                    yield event
                    continue
                totals.add(result.usage)
                assignment = assignments[member.name]
                review = council_pb2.MemberReview(
                    model=member.name,
                    text=result.text,
                    label_to_model=_label_map(assignment),
                    error=result.error,
                    usage=result.usage,
                )
                if not result.error:
                    parsed = ranking.parse_ranking(result.text, assignment.labels)
                    review.ranking.extend(ranking.display_label(label) for label in parsed.order)
                    review.ranking_parsed = parsed.parsed
                    reviews.append(ranking.Review(assignment, parsed))
                    written.append(prompts.MemberReview(assignment, result.text))
                yield Event(review=review)
        aggregate = ranking.aggregate(reviews, member_ids)
        if not d.done_reviews:
            yield Event(
                aggregate=council_pb2.AggregateRanking(
                    members=[
                        council_pb2.RankedMember(
                            model=entry.member_id,
                            average_rank=entry.average_rank or 0.0,
                            votes=entry.votes,
                        )
                        for entry in aggregate
                    ]
                )
            )

        # Stage 3 ------------------------------------------------------------
        yield Event(stage_started=3)
        chairman_prompt = prompts.chairman_prompt(
            d.question,
            [prompts.MemberAnswer(answer.model, answer.text) for answer in answered],
            written,
            aggregate,
            d.conversation,
        )
        errors: list[str] = []
        chairman: council_pb2.ChairmanAnswer | None = None
        chairmen = self.council.chairmen()
        for candidate in chairmen:
            deltas: asyncio.Queue[Event] = asyncio.Queue()
            task = asyncio.ensure_future(
                self._call(candidate, chairman_prompt, d, 3, deltas.put_nowait)
            )
            async for event in _drain(deltas, [task]):
                yield event
            result = task.result()
            totals.add(result.usage)
            if result.error:
                errors.append(f"{candidate.name}: {result.error}")
                continue
            chairman = council_pb2.ChairmanAnswer(
                model=candidate.name,
                text=result.text,
                fell_back_from=chairmen[0].name if candidate is not chairmen[0] else "",
                usage=result.usage,
            )
            break
        if chairman is None:
            raise Unavailable(
                "the chairman and every fallback failed: " + "; ".join(errors),
                reason=MODEL_UNAVAILABLE,
            )
        yield Event(chairman=chairman)

        if d.want_title:
            titler = self.council.member(chairman.model)
            result = await self._call(
                titler, prompts.title_prompt(d.question), d, 3, None, kind="title"
            )
            totals.add(result.usage)
            title = (
                prompts.parse_title(result.text, d.question)
                if not result.error
                else prompts.fallback_title(d.question)
            )
            yield Event(title=title)

    @staticmethod
    def _reviewer(
        member_ids: Sequence[str], reviewer: str, d: Deliberation
    ) -> ranking.LabelAssignment:
        # Seeded by the message and the reviewer: a resumed or repeated
        # message shows each reviewer the same labels.
        rng = random.Random(f"{d.message_id}:{reviewer}")
        return ranking.assign_labels(member_ids, reviewer, rng)

    async def _concurrently(
        self,
        calls: Sequence[tuple[Member, ComposedPrompt]],
        d: Deliberation,
        *,
        stage: int,
    ) -> AsyncIterator[Event | tuple[Member, _Result]]:
        """Run the calls at once: their deltas as they come, then each
        (member, result) as its call ends."""
        queue: asyncio.Queue = asyncio.Queue()

        async def run(member: Member, prompt: ComposedPrompt) -> None:
            result = await self._call(member, prompt, d, stage, queue.put_nowait)
            queue.put_nowait((member, result))

        tasks = [asyncio.ensure_future(run(member, prompt)) for member, prompt in calls]
        async for item in _drain(queue, tasks):
            yield item

    async def _call(
        self,
        member: Member,
        prompt: ComposedPrompt,
        d: Deliberation,
        stage: int,
        on_delta: Callable[[Event], object] | None,
        *,
        kind: str = "",
    ) -> _Result:
        """One model call, recorded and metered as cost (no reservation of its
        own); a failure is the result's error, the provider's own words."""
        request = GenerationRequest(
            user_id=d.user_id,
            purpose=STAGE_PURPOSES[stage],
            subject=Subject(SUBJECT_KIND, d.conversation_id),
            story=StoryInputs(),
            prompt=prompt,
        )
        attributes = {
            "conversation_id": d.conversation_id,
            "message_id": d.message_id,
            "stage": str(stage),
            "member": member.name,
        }
        if kind:
            attributes["call"] = kind
        call = GenerationCall(request, member.provider, reservation_id="", attributes=attributes)
        result = _Result()
        recording = self.recorder.recording(call)
        try:
            await self.recorder.start(call)
            async with recording:
                if on_delta is None:
                    await complete_generation(call)
                else:
                    async with aclosing(stream_generation(call)) as deltas:
                        async for delta in deltas:
                            on_delta(
                                Event(
                                    delta=council_pb2.CouncilDelta(
                                        stage=stage, model=member.name, text=delta
                                    )
                                )
                            )
            result.text = call.text
            result.usage = stage_usage(recording.recorded)
        except FabulaError as exc:
            result.error = exc.message
            result.usage = stage_usage(recording.recorded)
        return result

    async def _record_message(self, d: Deliberation, *, failure: FabulaError | None) -> None:
        """The message's own record: no model call, cost 0, under the
        message's reservation. Completed, it waits for its owner's
        GenerationDelivered to count; failed, billing gives the reservation back."""
        request = GenerationRequest(
            user_id=d.user_id,
            purpose=Purpose.council_message,
            subject=Subject(SUBJECT_KIND, d.conversation_id),
            story=StoryInputs(),
            prompt=ComposedPrompt("", "", 0, ""),
        )
        call = GenerationCall(
            request,
            _NoModel(),  # type: ignore[arg-type]  # recorded like a provider's call
            generation_id=uuid.UUID(d.message_id),
            reservation_id=d.message_id,
            delivery=Delivery.confirmed_by_owner,
            attributes={"conversation_id": d.conversation_id, "message_id": d.message_id},
        )
        call.reserved = True
        try:
            await self.recorder.start(call)
        except AlreadyExists:
            # Recorded by an earlier attempt of this message (its owner resumed it).
            return
        try:
            async with self.recorder.recording(call):
                if failure is not None:
                    raise failure
        except FabulaError:
            if failure is None:
                raise


async def _drain(queue: asyncio.Queue, tasks: Sequence[asyncio.Future]) -> AsyncIterator:
    """What the tasks put on the queue, until they have all ended; the tasks
    are cancelled when the consumer leaves first."""
    try:
        while True:
            getting = asyncio.ensure_future(queue.get())
            pending = {task for task in tasks if not task.done()}
            if not pending and queue.empty():
                getting.cancel()
                break
            await asyncio.wait({getting, *pending}, return_when=asyncio.FIRST_COMPLETED)
            if getting.done():
                yield getting.result()
            else:
                getting.cancel()
        for task in tasks:
            task.result()  # a bug in a task surfaces here
    finally:
        for task in tasks:
            if not task.done():
                task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

