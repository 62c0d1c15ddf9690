"""Conversions shared by every domain's mappers."""

from __future__ import annotations

import datetime as dt

from google.protobuf.timestamp_pb2 import Timestamp


def to_datetime(timestamp: Timestamp) -> dt.datetime:
    return timestamp.ToDatetime(tzinfo=dt.UTC)
