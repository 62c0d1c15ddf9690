"""Every table of the `users` schema, the shared ones and each domain's, in one
metadata: Alembic and the migration test read it from here. A new domain adds
its models' import below."""

from __future__ import annotations

from fabula_users.accounts.models import (
    AccountToken,
    LoginFailures,
    RefreshToken,
    RegistrationKey,
    User,
)
from fabula_users.admin.models import AuditEntry
from fabula_users.api_keys.models import ApiKey
from fabula_users.database import Base, outbox
from fabula_users.identities.models import Identity, PendingSignIn
from fabula_users.mail.models import OutgoingMail

__all__ = [
    "AccountToken",
    "ApiKey",
    "AuditEntry",
    "Base",
    "Identity",
    "LoginFailures",
    "OutgoingMail",
    "PendingSignIn",
    "RefreshToken",
    "RegistrationKey",
    "User",
    "outbox",
]
