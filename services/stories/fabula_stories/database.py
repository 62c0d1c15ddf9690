"""The `stories` schema's declarative base and the tables every domain of the
service shares. Each domain package defines its own models on this Base."""

from __future__ import annotations

from fabula_common.db import make_base

Base = make_base("stories")
