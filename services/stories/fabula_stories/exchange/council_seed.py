"""Reading the LLM council app's JSON folder (see council_importer.py).

    conversations/<id>.json   {id, created_at, title, messages: [
                                 {role: "user", content} |
                                 {role: "assistant", stage1: [{model, response}],
                                  stage2: [{model, ranking, parsed_ranking}],
                                  stage3: {model, response}}]}
                              and, from its multi-user version, user_id,
                              starred and follow_up_answers
    profiles/<user_id>.json   {user_id, email, display_name, created_at}
    subscriptions/<user_id>.json
                              {user_id, tier, stripe_customer_id,
                               stripe_subscription_id, status}

`follow_up_answers` (answers to the chairman's clarifying questions about the
conversation's first question) may be a list of {question, answer}, a list of
answers, or an object question → answer; they go with the first question and
its answer. Only the shape is checked here; the stories service checks the
limits. A file that does not fit is MalformedStory and nothing of it is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fabula.generation.v1 import council_pb2
from fabula.stories.v1 import conversations_pb2

from fabula_stories.conversations.models import CONVERSATION_TITLE_MAX_LENGTH
from fabula_stories.exchange.seed import (
    MalformedStory,
    flag_field,
    original_id,
    read_json_file,
    string_field,
    timestamp_field,
    type_name,
)

DEFAULT_SOURCE = "llm-council"


@dataclass(frozen=True)
class CouncilConversation:
    # The council app's user id; None in its single-user version.
    owner: str | None
    # Everything but the Fabula user id.
    request: conversations_pb2.ImportConversationRequest


@dataclass(frozen=True)
class Profile:
    user_id: str
    email: str


@dataclass(frozen=True)
class Subscription:
    user_id: str
    tier: str
    status: str
    stripe_subscription_id: str


def _object(document: Any, what: str) -> dict[str, Any]:
    if document is None:
        raise MalformedStory(f"missing {what}")
    if not isinstance(document, dict):
        raise MalformedStory(f"{what} must be a JSON object, not {type_name(document)}")
    return document


def _required_string(document: dict[str, Any], name: str, where: str = "") -> str:
    value = document.get(name)
    if value is None:
        raise MalformedStory(f"missing {where}{name}")
    return string_field(f"{where}{name}", value)


def read_profile(path: Path) -> Profile:
    document = _object(read_json_file(path), "a profile")
    email = _required_string(document, "email").strip()
    if "@" not in email:
        raise MalformedStory(f"email is not an email address: {email!r}")
    return Profile(user_id=original_id(document.get("user_id", path.stem)), email=email)


def read_subscription(path: Path) -> Subscription:
    document = _object(read_json_file(path), "a subscription")
    return Subscription(
        user_id=original_id(document.get("user_id", path.stem)),
        tier=_required_string(document, "tier"),
        status=string_field("status", document.get("status", "")),
        stripe_subscription_id=string_field(
            "stripe_subscription_id", document.get("stripe_subscription_id") or ""
        ),
    )


def read_conversation(path: Path, source: str = DEFAULT_SOURCE) -> CouncilConversation:
    document = _object(read_json_file(path), "a conversation")
    if document.get("id") is None:
        raise MalformedStory("missing id")
    messages = document.get("messages")
    if not isinstance(messages, list):
        raise MalformedStory(f"messages must be a list, not {type_name(messages)}")
    title = string_field("title", document.get("title") or "").strip()
    request = conversations_pb2.ImportConversationRequest(
        source=source,
        original_id=original_id(document["id"]),
        title=title[:CONVERSATION_TITLE_MAX_LENGTH],
        starred=flag_field("starred", document.get("starred", False)),
        messages=[_message(index, message) for index, message in enumerate(messages)],
    )
    if document.get("created_at") is not None:
        request.created_at.CopyFrom(timestamp_field("created_at", document["created_at"]))
    follow_ups = _follow_ups(document.get("follow_up_answers"))
    if follow_ups:
        _attach_follow_ups(request, follow_ups)
    owner = document.get("user_id")
    return CouncilConversation(
        owner=None if owner is None else original_id(owner), request=request
    )


def _message(index: int, value: Any) -> conversations_pb2.ImportedMessage:
    where = f"messages[{index}]."
    message = _object(value, f"messages[{index}]")
    role = message.get("role")
    if role == "user":
        return conversations_pb2.ImportedMessage(
            role="user", content=_required_string(message, "content", where)
        )
    if role != "assistant":
        raise MalformedStory(f'{where}role must be "user" or "assistant", not {role!r}')
    chairman = _object(message.get("stage3"), f"{where}stage3")
    record = conversations_pb2.CouncilRecord(
        answers=[
            council_pb2.MemberAnswer(
                model=_required_string(answer, "model", f"{where}stage1[{n}]."),
                text=_required_string(answer, "response", f"{where}stage1[{n}]."),
            )
            for n, answer in _items(message, "stage1", where)
        ],
        reviews=[_review(review, f"{where}stage2[{n}].") for n, review in _items(message, "stage2", where)],
        chairman=council_pb2.ChairmanAnswer(
            model=_required_string(chairman, "model", f"{where}stage3."),
            text=_required_string(chairman, "response", f"{where}stage3."),
        ),
    )
    return conversations_pb2.ImportedMessage(
        role="assistant", content=record.chairman.text, council=record
    )


def _items(message: dict[str, Any], name: str, where: str) -> list[tuple[int, dict[str, Any]]]:
    values = message.get(name) or []
    if not isinstance(values, list):
        raise MalformedStory(f"{where}{name} must be a list, not {type_name(values)}")
    return [(n, _object(value, f"{where}{name}[{n}]")) for n, value in enumerate(values)]


def _review(review: dict[str, Any], where: str) -> council_pb2.MemberReview:
    parsed = review.get("parsed_ranking") or []
    if not isinstance(parsed, list) or not all(isinstance(label, str) for label in parsed):
        raise MalformedStory(f"{where}parsed_ranking must be a list of labels")
    # The app kept no label → model map with its reviews; a review whose
    # ranking it could not parse stays flagged as such.
    return council_pb2.MemberReview(
        model=_required_string(review, "model", where),
        text=_required_string(review, "ranking", where),
        ranking=parsed,
        ranking_parsed=bool(parsed),
    )


def _follow_ups(value: Any) -> list[council_pb2.FollowUpAnswer]:
    if value is None:
        return []
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for n, item in enumerate(value):
            if isinstance(item, str):
                pairs.append(("", item))
            elif isinstance(item, dict):
                pairs.append((item.get("question", ""), item.get("answer")))
            else:
                raise MalformedStory(f"follow_up_answers[{n}] must be text or an object")
    else:
        raise MalformedStory(f"follow_up_answers must be a list or an object, not {type_name(value)}")
    answers = []
    for n, (question, answer) in enumerate(pairs):
        answers.append(
            council_pb2.FollowUpAnswer(
                question=string_field(f"follow_up_answers[{n}] question", question),
                answer=string_field(f"follow_up_answers[{n}] answer", answer),
            )
        )
    return answers


def _attach_follow_ups(
    request: conversations_pb2.ImportConversationRequest,
    follow_ups: list[council_pb2.FollowUpAnswer],
) -> None:
    """On the first question, and on the record of its answer (as the council
    answered with them)."""
    question = next((m for m in request.messages if m.role == "user"), None)
    if question is None:
        raise MalformedStory("follow_up_answers but no question they are about")
    question.follow_ups.extend(follow_ups)
    answer = next((m for m in request.messages if m.role == "assistant"), None)
    if answer is not None:
        answer.council.follow_ups.extend(follow_ups)
