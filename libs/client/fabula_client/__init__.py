"""Typed Python client for the Fabula REST API (sync `Fabula`, async `AsyncFabula`)."""

from fabula_client._core import RetryPolicy
from fabula_client.client import AsyncFabula, Fabula
from fabula_client.errors import (
    APIConnectionError,
    AuthenticationError,
    Conflict,
    ConversationBusy,
    FabulaError,
    IdempotencyKeyInProgress,
    InvalidRequest,
    NotFound,
    PermissionDenied,
    QuotaExceeded,
    RateLimited,
    ServerError,
    ServiceUnavailable,
    StoryBusy,
    StoryComplete,
)
from fabula_client.models import (
    ClarifyingQuestions,
    Conversation,
    CouncilEvent,
    Job,
    JobEvent,
    Message,
    Segment,
    SegmentWritten,
    Story,
    StorySummary,
    StoryWritten,
    TextDelta,
    Tokens,
    Usage,
)

__all__ = [
    "APIConnectionError", "AsyncFabula", "AuthenticationError", "ClarifyingQuestions", "Conflict",
    "Conversation", "ConversationBusy", "CouncilEvent", "Fabula", "FabulaError",
    "IdempotencyKeyInProgress", "InvalidRequest", "Job", "JobEvent", "Message", "NotFound",
    "PermissionDenied", "QuotaExceeded", "RateLimited", "RetryPolicy", "Segment", "SegmentWritten",
    "ServerError", "ServiceUnavailable", "Story", "StoryBusy", "StoryComplete", "StorySummary",
    "StoryWritten", "TextDelta", "Tokens", "Usage",
]
