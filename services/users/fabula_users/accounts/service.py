"""Account rules: registration, login, refresh-token rotation, lookup.

Every method takes the caller's session and never commits; the edge owns the
transaction.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from fabula.users.v1 import events_pb2
from fabula_common.db import utcnow
from fabula_common.errors import (
    AlreadyExists,
    Conflict,
    IdempotencyKeyReused,
    InvalidArgument,
    NotFound,
    RateLimited,
    TooBusy,
    Unauthenticated,
)
from fabula_common.messaging.bus import subject_for
from fabula_common.messaging.outbox import enqueue
from fabula_common.tokens import issue_access_token
from sqlalchemy.ext.asyncio import AsyncSession

from fabula_users.accounts import repository
from fabula_users.accounts.models import (
    AVATAR_URL_MAX_LENGTH,
    EMAIL_MAX_LENGTH,
    FULL_NAME_MAX_LENGTH,
    LOCALES,
    RefreshToken,
    User,
)
from fabula_users.accounts.passwords import PasswordHashing
from fabula_users.accounts.sealing import open_replacement, seal_replacement
from fabula_users.database import outbox
from fabula_users.mail.outbox import enqueue_mail
from fabula_users.mail.templates import render
from fabula_users.settings import Settings

log = logging.getLogger(__name__)

PASSWORD_MIN_LENGTH = 8
PASSWORD_MAX_LENGTH = 128
# One answer for an unknown email and a wrong password: callers must not be
# able to tell which emails have accounts.
INVALID_CREDENTIALS = "invalid email or password"
INVALID_REFRESH_TOKEN = "invalid or expired refresh token"
REFRESH_TOKEN_BYTES = 32
IDEMPOTENCY_KEY_MAX_LENGTH = 255
# How long a registration's Idempotency-Key is remembered (as Stripe does).
REGISTRATION_KEY_TTL = dt.timedelta(hours=24)
ACCOUNT_TOKEN_BYTES = 32
VERIFY_EMAIL = "verify-email"
RESET_PASSWORD = "reset-password"
INVALID_TOKEN = "token: unknown, already used or expired"
PROFILE_FIELDS = ("full_name", "avatar_url", "birthdate", "locale")
EARLIEST_BIRTHDATE = dt.date(1900, 1, 1)
# No one's today is later than UTC+14's.
LATEST_TIMEZONE = dt.timezone(dt.timedelta(hours=14))
# No one's today is earlier than UTC-12's.
EARLIEST_TIMEZONE = dt.timezone(dt.timedelta(hours=-12))
# Anyone may ask for a reset email for any address, and an account for its
# verification email again: at most one of each per account this often, so
# the endpoints cannot flood someone's inbox.
ACCOUNT_EMAIL_INTERVAL = dt.timedelta(seconds=60)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# Rotations followed when a token replayed within its grace window was itself
# rotated again meanwhile (each hop needs the token before it to open).
MAX_GRACE_HOPS = 8


class RefreshTokenReused(Unauthenticated):
    """A token that was already rotated away came back: someone else holds a
    copy. Its family has been revoked in the session, and that revocation must
    be committed although the call fails."""


class RegisteredMeanwhile(Exception):
    """A concurrent registration with the same Idempotency-Key and request
    created the account first: answer as a retry of it."""


@dataclass(frozen=True)
class Registration:
    """A registration request, validated and normalised. The key is known
    only by its hash, and the request by an HMAC under the key."""

    email: str
    password: str
    full_name: str
    key_hash: str | None = None
    request_hash: str | None = None


@dataclass(frozen=True)
class IssuedTokens:
    user: User
    access_token: str
    access_token_expires_in: int
    refresh_token: str


def normalise_email(raw: str) -> str:
    try:
        validated = validate_email(raw.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidArgument(f"email: {exc}") from None
    email = validated.normalized.lower()
    if len(email) > EMAIL_MAX_LENGTH:
        raise InvalidArgument(f"email: must be at most {EMAIL_MAX_LENGTH} characters")
    return email


def check_password(password: str) -> None:
    if not PASSWORD_MIN_LENGTH <= len(password) <= PASSWORD_MAX_LENGTH:
        raise InvalidArgument(
            f"password: must be {PASSWORD_MIN_LENGTH} to {PASSWORD_MAX_LENGTH} characters long"
        )


def normalise_full_name(raw: str) -> str:
    full_name = raw.strip()
    if "\x00" in full_name:  # Postgres text cannot hold NUL
        raise InvalidArgument("full_name: must not contain NUL characters")
    if len(full_name) > FULL_NAME_MAX_LENGTH:
        raise InvalidArgument(f"full_name: must be at most {FULL_NAME_MAX_LENGTH} characters")
    return full_name


def normalise_avatar_url(raw: str) -> str | None:
    url = raw.strip()
    if not url:
        return None
    if len(url) > AVATAR_URL_MAX_LENGTH:
        raise InvalidArgument(f"avatar_url: must be at most {AVATAR_URL_MAX_LENGTH} characters")
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if (
        parts is None
        or parts.scheme.lower() not in ("http", "https")
        or not parts.hostname
        or any(c.isspace() or c == "\x00" for c in url)
    ):
        raise InvalidArgument("avatar_url: must be an http:// or https:// URL")
    return url


# Below this age an account gets child-safe generation everywhere (COPPA's line).
CHILD_SAFE_UNDER_YEARS = 13


def is_child(birthdate: dt.date | None, today: dt.date | None = None) -> bool:
    """Whether the holder of an account born on `birthdate` is under 13 today
    (by UTC-12's calendar: a child is treated as one until the 13th
    birthday has begun everywhere). No birthdate: not known to be a child."""
    if birthdate is None:
        return False
    today = today or dt.datetime.now(EARLIEST_TIMEZONE).date()
    years = today.year - birthdate.year - ((today.month, today.day) < (birthdate.month, birthdate.day))
    return years < CHILD_SAFE_UNDER_YEARS


def parse_birthdate(raw: str) -> dt.date | None:
    text = raw.strip()
    if not text:
        return None
    try:
        if not _ISO_DATE.fullmatch(text):
            raise ValueError
        birthdate = dt.date.fromisoformat(text)
    except ValueError:
        raise InvalidArgument("birthdate: must be a date as YYYY-MM-DD") from None
    if birthdate > dt.datetime.now(LATEST_TIMEZONE).date():
        raise InvalidArgument("birthdate: must not be in the future")
    if birthdate < EARLIEST_BIRTHDATE:
        raise InvalidArgument(f"birthdate: must not be before {EARLIEST_BIRTHDATE.isoformat()}")
    return birthdate


def check_locale(locale: str) -> str:
    if locale not in LOCALES:
        raise InvalidArgument(f"locale: must be one of {', '.join(LOCALES)}")
    return locale


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _idempotency_key_reused() -> IdempotencyKeyReused:
    return IdempotencyKeyReused(
        "idempotency_key: already used for a different registration request"
    )


def email_taken() -> AlreadyExists:
    return AlreadyExists("email: an account with this email already exists", reason="email-taken")


def _invalid_credentials() -> Unauthenticated:
    return Unauthenticated(INVALID_CREDENTIALS, reason="invalid-credentials")


def account_deactivated() -> Unauthenticated:
    return Unauthenticated("this account has been deactivated", reason="account-deactivated")
def _invalid_token() -> InvalidArgument:
    return InvalidArgument(INVALID_TOKEN, reason="invalid-token")


def hash_account_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class UsersService:
    def __init__(self, settings: Settings, passwords: PasswordHashing) -> None:
        self.settings = settings
        self.passwords = passwords
        self.user_registered_subject = subject_for(settings, "users", "user_registered")

    # Registering takes up to three steps so that no database connection is
    # held while argon2 works: look for an earlier registration with the same
    # Idempotency-Key; if none, hash the password, then create the account.

    def check_registration(
        self, *, email: str, password: str, full_name: str, idempotency_key: str = ""
    ) -> Registration:
        email = normalise_email(email)
        check_password(password)
        full_name = normalise_full_name(full_name)
        if not idempotency_key:
            return Registration(email, password, full_name)
        if len(idempotency_key) > IDEMPOTENCY_KEY_MAX_LENGTH:
            raise InvalidArgument(
                f"idempotency_key: must be at most {IDEMPOTENCY_KEY_MAX_LENGTH} characters"
            )
        key = idempotency_key.encode()
        # Keyed by the idempotency key, so the stored value says nothing about
        # the email to whoever does not hold the key. The password is not in
        # it: a fast hash of it would be a weak password hash.
        request_hash = hmac.new(key, f"{email}\x00{full_name}".encode(), "sha256").hexdigest()
        return Registration(
            email, password, full_name, hashlib.sha256(key).hexdigest(), request_hash
        )

    async def find_registration(
        self, session: AsyncSession, registration: Registration
    ) -> User | None:
        """The account an earlier registration with this request's key
        created; InvalidArgument (idempotency-key-reused) when the key came
        with another request."""
        if registration.key_hash is None:
            return None
        record = await repository.get_registration_key(session, registration.key_hash, utcnow())
        if record is None:
            return None
        if not hmac.compare_digest(record.request_hash, registration.request_hash or ""):
            raise _idempotency_key_reused()
        return await repository.get_user(session, record.user_id)

    async def verify_repeated_registration(self, user: User, registration: Registration) -> None:
        """The password must be the one the account was registered with: a
        retry is answered with tokens, so it must prove what a login does."""
        if user.password_hash is None or not await self.passwords.verify(
            user.password_hash, registration.password
        ):
            raise _idempotency_key_reused()
        if not user.is_active:
            raise account_deactivated()

    async def hash_password(self, registration: Registration) -> str:
        return await self.passwords.hash(registration.password)

    async def register(
        self, session: AsyncSession, registration: Registration, password_hash: str
    ) -> IssuedTokens:
        """Create the account. Raises RegisteredMeanwhile when a concurrent
        registration with the same key and request won the race."""
        user = await repository.create_user(
            session,
            email=registration.email,
            password_hash=password_hash,
            full_name=registration.full_name,
        )
        if user is None:
            if await self.find_registration(session, registration) is not None:
                raise RegisteredMeanwhile
            raise email_taken()
        if registration.key_hash is not None:
            now = utcnow()
            recorded = await repository.add_registration_key(
                session,
                key_hash=registration.key_hash,
                request_hash=registration.request_hash or "",
                user_id=user.id,
                now=now,
                expires_at=now + REGISTRATION_KEY_TTL,
            )
            if not recorded:
                # A concurrent registration of another email took the key
                # first; this one is rolled back.
                raise _idempotency_key_reused()
        await self.announce_registration(session, user)
        await self.send_verification(session, user)
        issued, _ = await self._issue(session, user, family_id=uuid.uuid4())
        return issued

    async def announce_registration(self, session: AsyncSession, user: User) -> None:
        """UserRegistered, in the transaction that created the account (also
        one created by signing in with an identity provider)."""
        await enqueue(
            session,
            outbox,
            self.user_registered_subject,
            events_pb2.UserRegistered(
                event_id=str(uuid.uuid4()),
                user_id=str(user.id),
                email=user.email,
                occurred_at=user.created_at,
            ),
        )

    # Logging in takes three steps so that no database connection is held
    # while argon2 works (tens to hundreds of milliseconds, by design):
    # find the user, verify the password outside any transaction, then issue.

    async def find_for_login(self, session: AsyncSession, email: str) -> User | None:
        try:
            return await repository.get_user_by_email(session, normalise_email(email))
        except InvalidArgument:
            return None  # a malformed email is just an unknown one here

    async def verify_login(self, user: User | None, password: str) -> str | None:
        """Raise Unauthenticated unless `password` is the user's; return a new
        hash when the stored one was made with other argon2 parameters."""
        # An account without a password (made through an identity provider)
        # fails like an unknown email.
        if user is None or user.password_hash is None or len(password) > PASSWORD_MAX_LENGTH:
            # Same work as a real check, so the answer's timing is the same too.
            await self.passwords.verify_dummy(password[:PASSWORD_MAX_LENGTH])
            raise _invalid_credentials()
        if not await self.passwords.verify(user.password_hash, password):
            raise _invalid_credentials()
        # Told only to whoever knows the password.
        if not user.is_active:
            raise account_deactivated()
        if self.passwords.needs_rehash(user.password_hash):
            try:
                return await self.passwords.hash(password)
            except TooBusy:
                return None  # the password is right: rehash at a quieter login
        return None

    async def issue_for_login(
        self,
        session: AsyncSession,
        user: User,
        new_password_hash: str | None,
        *,
        record_login: bool = True,
    ) -> IssuedTokens:
        if new_password_hash is not None:
            await repository.set_password_hash(session, user, new_password_hash)
        if record_login:
            await repository.touch_last_login(session, user)
        issued, _ = await self._issue(session, user, family_id=uuid.uuid4())
        return issued

    async def refresh(self, session: AsyncSession, refresh_token: str) -> IssuedTokens:
        """Rotate: the presented token is revoked and a new one of the same
        family issued. Presented again within the grace window, it gets that
        same new refresh token (and a fresh access token); after it, it raises
        RefreshTokenReused, having revoked the family."""
        stored = None
        if refresh_token:
            stored = await repository.get_refresh_token_for_update(
                session, hash_refresh_token(refresh_token)
            )
        if stored is None:
            raise Unauthenticated(INVALID_REFRESH_TOKEN)
        if stored.revoked_at is not None:
            repeated = await self._replacement_within_grace(session, stored, refresh_token)
            if repeated is not None:
                return repeated
            revoked = await repository.revoke_token_family(session, stored.family_id)
            log.warning(
                "revoked refresh token presented again: family %s of user %s revoked "
                "(%d live tokens)",
                stored.family_id,
                stored.user_id,
                revoked,
            )
            raise RefreshTokenReused(INVALID_REFRESH_TOKEN)
        if stored.expires_at <= utcnow():
            raise Unauthenticated(INVALID_REFRESH_TOKEN)
        user = await repository.get_user(session, stored.user_id)
        if user is None:  # the foreign key cascades, so only a race with a deletion
            raise Unauthenticated(INVALID_REFRESH_TOKEN)
        if not user.is_active:
            raise account_deactivated()
        issued, replacement = await self._issue(session, user, family_id=stored.family_id)
        grace = self.settings.refresh_reuse_grace_seconds
        sealed, window_ends = None, None
        if grace > 0:
            sealed = seal_replacement(refresh_token, stored.id, issued.refresh_token)
            window_ends = utcnow() + dt.timedelta(seconds=grace)
        await repository.mark_rotated(
            session,
            stored,
            replaced_by=replacement,
            replacement_sealed=sealed,
            replacement_expires_at=window_ends,
        )
        return issued

    async def _replacement_within_grace(
        self, session: AsyncSession, rotated: RefreshToken, presented: str
    ) -> IssuedTokens | None:
        """The live token `presented` was rotated into, when every rotation
        on the way is within its grace window; None otherwise (a reuse)."""
        token, row = presented, rotated
        now = utcnow()
        for _ in range(MAX_GRACE_HOPS):
            if row.revoked_at is None:
                if row.expires_at <= now:
                    raise Unauthenticated(INVALID_REFRESH_TOKEN)
                user = await repository.get_user(session, row.user_id)
                if user is None:
                    raise Unauthenticated(INVALID_REFRESH_TOKEN)
                if not user.is_active:
                    raise account_deactivated()
                access_token, expires_in = issue_access_token(self.settings, str(user.id))
                log.info("refresh token of family %s presented again within grace", row.family_id)
                return IssuedTokens(user, access_token, expires_in, token)
            if (
                row.replaced_by_id is None
                or row.replacement_sealed is None
                or row.replacement_expires_at is None
                or row.replacement_expires_at <= now
            ):
                return None
            opened = open_replacement(token, row.id, row.replacement_sealed)
            if opened is None:
                return None
            # Locked like the first: a concurrent rotation of it waits.
            following = await repository.get_refresh_token_by_id_for_update(
                session, row.replaced_by_id
            )
            if following is None or following.token_hash != hash_refresh_token(opened):
                return None
            token, row = opened, following
        return None

    async def get_user(self, session: AsyncSession, user_id: str) -> User:
        # A malformed id names no user: NOT_FOUND, like any other unknown id.
        try:
            parsed = uuid.UUID(user_id)
        except ValueError:
            raise NotFound("user not found") from None
        user = await repository.get_user(session, parsed)
        if user is None:
            raise NotFound("user not found")
        return user

    async def find_user_by_email(self, session: AsyncSession, email: str) -> User:
        """The account with this email, whatever its case (emails are stored
        lower-cased); NOT_FOUND when none."""
        user = await repository.get_user_by_email(session, normalise_email(email))
        if user is None:
            raise NotFound("user not found")
        return user

    # --- Profile --------------------------------------------------------------

    async def update_profile(
        self, session: AsyncSession, user_id: str, fields: Sequence[str], values: dict[str, str]
    ) -> User:
        changes: dict[str, object] = {}
        for name in fields:
            if name not in PROFILE_FIELDS:
                raise InvalidArgument(
                    f"fields: unknown field {name!r} (one of {', '.join(PROFILE_FIELDS)})"
                )
            raw = values.get(name, "")
            if name == "full_name":
                changes[name] = normalise_full_name(raw)
            elif name == "avatar_url":
                changes[name] = normalise_avatar_url(raw)
            elif name == "birthdate":
                changes[name] = parse_birthdate(raw)
            else:
                changes[name] = check_locale(raw)
        user = await self.get_user(session, user_id)
        if not changes:
            return user
        updated = await repository.update_user(session, user.id, **changes)
        if updated is None:
            raise NotFound("user not found")
        return updated

    async def verify_password(self, user: User, password: str) -> None:
        """Unauthenticated unless `password` is the user's (for a sensitive change)."""
        if (
            not user.password_hash
            or len(password) > PASSWORD_MAX_LENGTH
            or not await self.passwords.verify(user.password_hash, password)
        ):
            raise Unauthenticated("password: wrong password", reason="invalid-credentials")

    async def change_email(self, session: AsyncSession, user_id: uuid.UUID, email: str) -> User:
        """Set the (normalised) new email: unverified, with a verification
        mail to it; the old address's pending verifications end."""
        user = await repository.change_email(session, user_id, email)
        if user is None:
            raise email_taken()
        await repository.use_all_account_tokens(session, user.id, VERIFY_EMAIL)
        await self.send_verification(session, user)
        return user

    # --- Emailed tokens --------------------------------------------------------

    async def _send_token(self, session: AsyncSession, user: User, purpose: str) -> None:
        ttl = (
            self.settings.email_verification_ttl_seconds
            if purpose == VERIFY_EMAIL
            else self.settings.password_reset_ttl_seconds
        )
        token = secrets.token_urlsafe(ACCOUNT_TOKEN_BYTES)
        await repository.add_account_token(
            session,
            user_id=user.id,
            purpose=purpose,
            token_hash=hash_account_token(token),
            email=user.email,
            expires_at=utcnow() + dt.timedelta(seconds=ttl),
        )
        subject, body = render(
            purpose, user.locale, base_url=self.settings.app_base_url, token=token, ttl_seconds=ttl
        )
        await enqueue_mail(session, recipient=user.email, subject=subject, body=body)

    async def send_verification(self, session: AsyncSession, user: User) -> None:
        await self._send_token(session, user, VERIFY_EMAIL)

    async def request_verification(self, session: AsyncSession, user_id: str) -> None:
        user = await self.get_user(session, user_id)
        if user.is_verified:
            raise Conflict("the email address is already verified", reason="already-verified")
        # At most one a minute, like reset emails: a script holding a token
        # must not turn the endpoint into a mail cannon.
        if await repository.account_token_issued_since(
            session, user.id, VERIFY_EMAIL, utcnow() - ACCOUNT_EMAIL_INTERVAL
        ):
            raise RateLimited(
                "a verification email was sent less than a minute ago: check the inbox "
                "(and spam folder), or ask again in a minute",
                retry_after=ACCOUNT_EMAIL_INTERVAL.total_seconds(),
            )
        await self.send_verification(session, user)

    async def verify_email(self, session: AsyncSession, token: str) -> User:
        used = await self._use_token(session, VERIFY_EMAIL, token)
        user = await repository.get_user(session, used.user_id)
        # Sent to an address the account no longer has: it proves nothing.
        if user is None or user.email != used.email:
            raise _invalid_token()
        if user.is_verified:
            return user
        verified = await repository.update_user(session, user.id, is_verified=True)
        assert verified is not None
        return verified

    async def request_password_reset(self, session: AsyncSession, email: str) -> bool:
        """Queue a reset email when the address has an account; True if it has.
        The caller answers the same either way."""
        try:
            user = await repository.get_user_by_email(session, normalise_email(email))
        except InvalidArgument:
            return False
        if user is None:
            return False
        if await repository.account_token_issued_since(
            session, user.id, RESET_PASSWORD, utcnow() - ACCOUNT_EMAIL_INTERVAL
        ):
            log.info("password reset for user %s asked again within a minute: not sent", user.id)
            return False
        await self._send_token(session, user, RESET_PASSWORD)
        return True

    def check_new_password(self, password: str) -> None:
        check_password(password)

    async def reset_password(self, session: AsyncSession, token: str, password_hash: str) -> User:
        """Set the password hash (hashed by the caller before the transaction)
        and revoke every refresh token of the account."""
        used = await self._use_token(session, RESET_PASSWORD, token)
        user = await repository.get_user(session, used.user_id)
        if user is None:
            raise _invalid_token()
        await repository.set_password_hash(session, user, password_hash)
        # Any other reset link sent meanwhile must not work after this one.
        await repository.use_all_account_tokens(session, user.id, RESET_PASSWORD)
        revoked = await repository.revoke_user_refresh_tokens(session, user.id)
        if user.email == used.email and not user.is_verified:
            # The token came to this address: its owner has just proved it.
            await repository.update_user(session, user.id, is_verified=True)
        log.info("password of user %s reset; %d refresh tokens revoked", user.id, revoked)
        return user

    async def _use_token(self, session: AsyncSession, purpose: str, token: str):
        if not token or len(token) > 512:
            raise _invalid_token()
        token_hash = hash_account_token(token)
        used = await repository.use_account_token(session, purpose, token_hash)
        # Found by its hash's index; compared again in constant time.
        if used is None or not hmac.compare_digest(used.token_hash, token_hash):
            raise _invalid_token()
        return used

    async def purge_expired_account_tokens(self, session: AsyncSession) -> int:
        return await repository.delete_account_tokens_expired_before(session, utcnow())

    async def _issue(
        self, session: AsyncSession, user: User, *, family_id: uuid.UUID
    ) -> tuple[IssuedTokens, RefreshToken]:
        access_token, expires_in = issue_access_token(self.settings, str(user.id))
        refresh_token = secrets.token_urlsafe(REFRESH_TOKEN_BYTES)
        stored = await repository.add_refresh_token(
            session,
            user_id=user.id,
            family_id=family_id,
            token_hash=hash_refresh_token(refresh_token),
            expires_at=utcnow() + dt.timedelta(seconds=self.settings.refresh_token_ttl_seconds),
        )
        issued = IssuedTokens(
            user=user,
            access_token=access_token,
            access_token_expires_in=expires_in,
            refresh_token=refresh_token,
        )
        return issued, stored

    async def purge_expired_refresh_tokens(self, session: AsyncSession) -> int:
        now = utcnow()
        await repository.clear_replacements_expired_before(session, now)
        cutoff = now - dt.timedelta(seconds=self.settings.refresh_token_retention_seconds)
        return await repository.delete_refresh_tokens_expired_before(session, cutoff)

    async def purge_expired_registration_keys(self, session: AsyncSession) -> int:
        return await repository.delete_registration_keys_expired_before(session, utcnow())
