"""Login throttling: consecutive failures per account and per client address.

Each attempt is counted as a failure before its password is checked, by one
conditional statement per key that refuses it once the limit is reached
(repository.count_login_attempt): concurrent attempts cannot slip past the
limit between a check and a count. A success takes its count back (and
clears the account's). Refused attempts are not counted, so the refusal ends
a window after the last real failure; the right password does not end it.
Keys are hashes: the table holds no email or address in clear.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import math
from dataclasses import dataclass

from fabula_common.db import utcnow
from fabula_common.errors import TooManyAttempts
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts import repository
from fabula_users.settings import Settings

TOO_MANY_ATTEMPTS = "too many failed logins; try again later"
# Failures answered without delay; later ones wait (doubling, capped).
UNDELAYED_FAILURES = 3
MAX_DELAY_FACTOR = 4


def _key(kind: str, value: str) -> str:
    return f"{kind}:" + hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Attempt:
    """A login attempt admitted: the keys it was counted against, and the
    account's consecutive failures if this one fails too."""

    account_key: str
    address_key: str | None
    failures: int


class LoginThrottle:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.window = dt.timedelta(seconds=settings.login_failure_window_seconds)

    async def admit(self, session: AsyncSession, email: str, client_ip: str) -> Attempt:
        """Count the attempt; TooManyAttempts (with the wait) when the account
        or the address has failed too often."""
        account_key = _key("account", email.strip().lower())
        address_key = _key("address", client_ip) if client_ip else None
        failures = await repository.count_login_attempt(
            session, account_key, limit=self.settings.login_max_failures, window=self.window
        )
        if failures is None:
            raise await self._refused(session, account_key)
        if address_key is not None:
            counted = await repository.count_login_attempt(
                session,
                address_key,
                limit=self.settings.login_max_failures_per_address,
                window=self.window,
            )
            if counted is None:
                # The caller's transaction rolls back the account's count too.
                raise await self._refused(session, address_key)
        return Attempt(account_key, address_key, failures)

    async def _refused(self, session: AsyncSession, key: str) -> TooManyAttempts:
        until = await repository.login_refused_until(session, key, self.window)
        wait = 1.0 if until is None else max(1.0, (until - utcnow()).total_seconds())
        return TooManyAttempts(TOO_MANY_ATTEMPTS, retry_after=math.ceil(wait))

    async def succeeded(self, session: AsyncSession, attempt: Attempt) -> None:
        await repository.forget_login_failures(session, attempt.account_key)
        if attempt.address_key is not None:
            await repository.uncount_login_attempt(session, attempt.address_key)

    async def slow_down(self, attempt: Attempt) -> None:
        """Delay the answer to a failure, more the more consecutive ones."""
        base = self.settings.login_failure_delay_seconds
        extra = attempt.failures - UNDELAYED_FAILURES
        if base > 0 and extra > 0:
            await asyncio.sleep(base * min(2 ** (extra - 1), MAX_DELAY_FACTOR))

    async def purge(self, session: AsyncSession) -> int:
        return await repository.delete_login_failures_before(session, utcnow() - self.window)
