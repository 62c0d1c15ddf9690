"""Opaque keyset cursors for lists ordered newest first by (timestamp, key):
the cursor is the key of the previous page's last item."""

from __future__ import annotations

import base64
import binascii
import datetime as dt

from fabula_common.errors import InvalidArgument

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def encode_cursor(moment: dt.datetime, key: str) -> str:
    # Microseconds: Postgres' precision, so the key compares exactly.
    micros = (moment - _EPOCH) // dt.timedelta(microseconds=1)
    return base64.urlsafe_b64encode(f"{micros}:{key}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> tuple[dt.datetime, str] | None:
    """The key a cursor stands for; None for the first page (empty cursor).
    InvalidArgument for anything this module did not write."""
    if not cursor:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        micros, key = raw.decode().split(":", 1)
        return _EPOCH + dt.timedelta(microseconds=int(micros)), key
    except (binascii.Error, ValueError, UnicodeDecodeError, OverflowError):
        raise InvalidArgument("cursor is malformed") from None


def page_limit(limit: int, default: int = 20, maximum: int = 100) -> int:
    """A request's page size: 0 means `default`; 1..maximum."""
    if limit == 0:
        return default
    if not 1 <= limit <= maximum:
        raise InvalidArgument(f"limit must be between 1 and {maximum}")
    return limit
