"""Answering a message with the council (generation's CouncilService), as
stories/writer.py writes story segments: the conversation is claimed first
(one message at a time: a second is refused before any model call), the
claim is renewed while the council works, and the work runs in a task of its
own, so a caller that goes away cancels nothing: the message is stored (and
reported delivered, so billed) anyway.

Each stage is stored as it completes (answers after stage 1, reviews and the
aggregate ranking after stage 2, the chairman after stage 3); the answer,
the title and GenerationDelivered then go in one transaction. A council that
fails ends the message failed with GenerationDiscarded.

A message whose writer stops (shutdown) or dies midway stays `answering`
with the stages it stored, its claim released or lapsing: `interrupted`.
ResumeMessage claims it again and sends those stages to the council as done
(generation then neither re-asks the members that answered nor reserves the
message twice), so it is delivered, and counted, once. A new question gives
it up instead (failed, discarded)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

import grpc
from fabula.generation.v1 import council_pb2, council_pb2_grpc
from fabula.stories.v1 import conversations_pb2
from fabula_common.db import Database
from fabula_common.errors import FabulaError, Unavailable, from_rpc_error

from fabula_stories.conversations import events, service
from fabula_stories.conversations.mapping import message_to_proto
from fabula_stories.conversations.models import ConversationMessage
from fabula_stories.conversations.service import Deliberation
from fabula_stories.leases import WriterTasks, keep_renewed
from fabula_stories.settings import Settings
from fabula_stories.stories.events import DeliverySubjects

log = logging.getLogger(__name__)

# How long a clarifying-questions call may take (one chairman call).
_CLARIFY_TIMEOUT_FLOOR_SECONDS = 30.0

ConversationEvent = conversations_pb2.ConversationEvent


@dataclass
class _Delivery:
    queue: asyncio.Queue[ConversationEvent | BaseException | None] = field(
        default_factory=asyncio.Queue
    )
    # False once the call has ended (normally or because its client went
    # away); the task then finishes unobserved.
    listening: bool = True

    def put(self, event: ConversationEvent) -> None:
        self.queue.put_nowait(event)


class _Council:
    """The CouncilRecord as the events build it, stored after each stage."""

    def __init__(
        self,
        follow_ups: list[council_pb2.FollowUpAnswer],
        stored: conversations_pb2.CouncilRecord | None = None,
    ) -> None:
        self.record = conversations_pb2.CouncilRecord(follow_ups=follow_ups)
        if stored is not None:
            # Resumed: the stages stored before go on as they were (a stage
            # is stored only once complete; stage 3 is always run again).
            self.record.answers.extend(stored.answers)
            self.record.reviews.extend(stored.reviews)
            if stored.HasField("aggregate"):
                self.record.aggregate.CopyFrom(stored.aggregate)
            self.record.failed_members.extend(stored.failed_members)
        self.title = ""
        self.done = False

    def apply(self, event: council_pb2.CouncilEvent) -> bool:
        """Take in `event`; True when it completes a stage (time to store)."""
        which = event.WhichOneof("event")
        record = self.record
        if which == "stage_started":
            # A new stage: the one before it is complete.
            return event.stage_started > 1
        if which == "answer":
            record.answers.append(event.answer)
            if event.answer.error:
                self._failed(event.answer.model)
        elif which == "review":
            record.reviews.append(event.review)
            if event.review.error:
                self._failed(event.review.model)
        elif which == "aggregate":
            record.aggregate.CopyFrom(event.aggregate)
            return True
        elif which == "chairman":
            record.chairman.CopyFrom(event.chairman)
            if event.chairman.fell_back_from:
                self._failed(event.chairman.fell_back_from)
            return True
        elif which == "title":
            self.title = event.title
        elif which == "done":
            record.usage.CopyFrom(event.done.usage)
            self.done = True
        return False

    def _failed(self, model: str) -> None:
        if model and model not in self.record.failed_members:
            self.record.failed_members.append(model)


class ConversationWriter:
    def __init__(
        self,
        db: Database,
        council: council_pb2_grpc.CouncilServiceStub,
        settings: Settings,
    ) -> None:
        self._db = db
        self._council = council
        self._settings = settings
        self._subjects = DeliverySubjects.for_settings(settings)
        self._tasks = WriterTasks()
        self._stopped = asyncio.Event()

    async def send_message(
        self, user_id: uuid.UUID, conversation_id: uuid.UUID, content: str
    ) -> AsyncIterator[ConversationEvent]:
        content = service.validate_content(content)
        work = await self._begin(service.begin_message, user_id, conversation_id, None, content)
        async for event in self._run(work, ask_first=self._settings.council_follow_up_questions > 0):
            yield event

    async def answer_follow_up(
        self, user_id: uuid.UUID, conversation_id: uuid.UUID, answers: list[str]
    ) -> AsyncIterator[ConversationEvent]:
        work = await self._begin(service.begin_follow_up, user_id, conversation_id, None, answers)
        async for event in self._run(work, ask_first=False):
            yield event

    async def resume_message(
        self, user_id: uuid.UUID, conversation_id: uuid.UUID, message_id: uuid.UUID
    ) -> AsyncIterator[ConversationEvent]:
        work = await self._begin(service.begin_resume, user_id, conversation_id, message_id)
        async for event in self._run(work, ask_first=False):
            yield event

    async def _begin(
        self,
        begin: Callable[..., Awaitable[Deliberation]],
        user_id: uuid.UUID,
        conversation_id: uuid.UUID,
        message_id: uuid.UUID | None,
        *args: Any,
    ) -> Deliberation:
        """Claim the conversation for `message_id` (a new message's when None)
        with `begin`, in a transaction of its own."""
        request = service.ClaimRequest(
            subjects=self._subjects,
            user_id=user_id,
            conversation_id=conversation_id,
            message_id=message_id or uuid.uuid4(),
            lease_seconds=self._settings.write_lease_seconds,
            retention_days=self._settings.council_free_retention_days,
        )
        async with self._db.session_scope() as session:
            return await begin(session, request, *args)

    # --- Lifecycle: a worker of the app, stopped before the outbox relay ----------

    async def run(self) -> None:
        await self._stopped.wait()

    async def stop(self) -> None:
        """Give messages in flight the shutdown grace to finish, then cancel
        them (they end failed, their generations discarded)."""
        try:
            await self._tasks.finish(self._settings.shutdown_grace_seconds)
        finally:
            self._stopped.set()

    # --- The work ---------------------------------------------------------------

    async def _run(self, work: Deliberation, *, ask_first: bool) -> AsyncIterator[ConversationEvent]:
        delivery = _Delivery()
        delivery.put(ConversationEvent(message=message_to_proto(work.question)))
        self._spawn(self._answer(work, ask_first, delivery))
        try:
            while True:
                event = await delivery.queue.get()
                if event is None:
                    return
                if isinstance(event, BaseException):
                    raise event
                yield event
        finally:
            delivery.listening = False

    async def _answer(self, work: Deliberation, ask_first: bool, delivery: _Delivery) -> None:
        """The work of one SendMessage or AnswerFollowUp call, under the
        conversation's claim; never raises but on cancellation."""
        renewing = asyncio.Event()
        self._spawn(self._renew(work, renewing))
        try:
            if ask_first:
                questions = await self._clarifying_questions(work)
                if questions:
                    async with self._db.session_scope() as session:
                        await service.ask_follow_up(session, work, questions)
                    delivery.put(
                        ConversationEvent(
                            questions=conversations_pb2.ClarifyingQuestions(questions=questions)
                        )
                    )
                    delivery.queue.put_nowait(None)
                    return
            message = await self._deliberate(work, delivery)
            delivery.put(ConversationEvent(message=message_to_proto(message)))
            delivery.queue.put_nowait(None)
        except asyncio.CancelledError:
            delivery.queue.put_nowait(Unavailable("the service is shutting down"))
            raise
        except Exception as exc:  # noqa: BLE001 - handed to the call, which maps it
            if not delivery.listening:
                log.warning("message %s failed after its caller left: %r", work.message_id, exc)
            delivery.queue.put_nowait(exc)
        finally:
            renewing.set()

    async def _clarifying_questions(self, work: Deliberation) -> list[str]:
        request = council_pb2.ClarifyingQuestionsRequest(
            user_id=str(work.user_id),
            conversation_id=str(work.conversation_id),
            question=work.question.content,
            history=work.history,
            max_questions=self._settings.council_follow_up_questions,
        )
        try:
            response = await self._council.ClarifyingQuestions(
                request,
                timeout=max(self._settings.generation_deadline_seconds, _CLARIFY_TIMEOUT_FLOOR_SECONDS),
            )
        except grpc.aio.AioRpcError as err:
            async with self._db.session_scope() as session:
                await service.ask_follow_up(session, work, [])
            raise from_rpc_error(err) from err
        return [q for q in response.questions if q.strip()][
            : self._settings.council_follow_up_questions
        ]

    async def _deliberate(self, work: Deliberation, delivery: _Delivery) -> ConversationMessage:
        if work.stored is None:
            async with self._db.session_scope() as session:
                await service.start_answer(session, work)
        council = _Council(work.follow_ups, work.stored)
        request = council_pb2.DeliberateRequest(
            user_id=str(work.user_id),
            message_id=str(work.message_id),
            conversation_id=str(work.conversation_id),
            question=work.question.content,
            history=work.history,
            follow_ups=work.follow_ups,
            want_title=work.want_title,
            done_answers=council.record.answers,
            # Stage 2 is stored once complete, with its aggregate ranking.
            done_reviews=council.record.reviews if council.record.HasField("aggregate") else [],
        )
        try:
            try:
                async for event in self._council.Deliberate(
                    request, timeout=self._settings.council_deadline_seconds
                ):
                    if council.apply(event):
                        async with self._db.session_scope() as session:
                            await service.store_stage(session, work.message_id, council.record)
                    delivery.put(ConversationEvent(council=event))
            except grpc.aio.AioRpcError as err:
                raise from_rpc_error(err) from err
            if not council.record.chairman.text.strip():
                raise FabulaError("the council ended without the chairman's answer")
        except BaseException as exc:
            await self._fail(work, council, exc)
            raise
        async with self._db.session_scope() as session:
            return await service.finish(session, self._subjects, work, council.record, council.title)

    async def _fail(self, work: Deliberation, council: _Council, exc: BaseException) -> None:
        reason = events.MODEL_FAILED if isinstance(exc, FabulaError) else events.STORE_FAILED

        async def fail() -> None:
            async with self._db.session_scope() as session:
                if isinstance(exc, asyncio.CancelledError):
                    # Stopped, not failed: resumable (see the module's docstring).
                    await service.interrupt(session, work, council.record)
                else:
                    await service.fail(session, self._subjects, work, council.record, reason)

        # A task of its own: ending the message must survive a cancellation.
        try:
            await asyncio.shield(self._spawn(fail()))
        except Exception as err:  # noqa: BLE001 - the lease lapses; the next claim ends it
            log.warning("could not end message %s as failed: %r", work.message_id, err)

    async def _renew(self, work: Deliberation, stopped: asyncio.Event) -> None:
        await keep_renewed(
            self._db,
            lambda session: service.renew(session, work, self._settings.write_lease_seconds),
            stopped,
            interval=self._settings.write_lease_renew_seconds,
            what=f"message {work.message_id}",
        )

    def _spawn(self, work: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        return self._tasks.spawn(work)

