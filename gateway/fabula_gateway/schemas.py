"""Pieces of the public JSON shapes shared by every domain's schemas."""

from __future__ import annotations

from pydantic import AfterValidator, BaseModel, ConfigDict


def _without_nul(value: str) -> str:
    # Postgres text cannot hold NUL: refused here, naming the field, rather
    # than failing in a service's database.
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    return value


NoNul = AfterValidator(_without_nul)


class RequestBody(BaseModel):
    # A misspelt field is an error, not silently ignored.
    model_config = ConfigDict(extra="forbid")
