"""Leaving, end to end: export returns the user's stories; deleting the account
removes the user from every service, and no schema holds their id afterwards
except as anonymised ledger entries (which hold no id at all)."""

from __future__ import annotations

import asyncio
import os

import asyncpg
import pytest
from fabula_common.provision import SERVICES

pytestmark = pytest.mark.e2e

SCANNED_TYPES = ("uuid", "text", "character varying", "character", "jsonb")


async def _places_holding(stack, needle: str) -> dict[str, int]:
    """Every column of every table of every service's schema whose value
    contains `needle` (text, uuid and JSON columns), with how many rows."""
    admin = stack.env.get("POSTGRES_ADMIN_URL") or os.environ.get(
        "POSTGRES_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
    )
    dsn = admin.rsplit("/", 1)[0] + "/" + stack.env["FABULA_DATABASE_NAME"]
    connection = await asyncpg.connect(dsn)
    try:
        columns = await connection.fetch(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = ANY($1::text[]) AND data_type = ANY($2::text[])",
            list(SERVICES),
            list(SCANNED_TYPES),
        )
        assert {row["table_schema"] for row in columns} == set(SERVICES)
        found = {}
        for row in columns:
            schema, table, column = row["table_schema"], row["table_name"], row["column_name"]
            count = await connection.fetchval(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text LIKE $1',
                f"%{needle}%",
            )
            if count:
                found[f"{schema}.{table}.{column}"] = count
        return found
    finally:
        await connection.close()


async def _anonymised_ledger_entries(stack) -> int:
    admin = stack.env.get("POSTGRES_ADMIN_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
    connection = await asyncpg.connect(
        admin.rsplit("/", 1)[0] + "/" + stack.env["FABULA_DATABASE_NAME"]
    )
    try:
        return await connection.fetchval(
            "SELECT count(*) FROM billing.usage_ledger WHERE user_id IS NULL"
        )
    finally:
        await connection.close()


def places_holding(stack, needle: str) -> dict[str, int]:
    return asyncio.run(_places_holding(stack, needle))


def test_export_then_delete_removes_the_user_from_every_service(api, problem):
    writer = api.register()
    user_id = writer.tokens["user"]["id"]
    created = api.create_story(writer, title="The Lighthouse")
    assert created.status_code == 201, created.text
    story = created.json()
    continued = api.http.post(
        f"/v1/stories/{story['id']}/continue", json={"direction": "a storm"}, headers=writer.headers
    )
    assert continued.status_code == 201, continued.text
    conversation = api.http.post(
        "/v1/conversations", json={"title": "Openings"}, headers=writer.headers
    )
    assert conversation.status_code == 201, conversation.text

    export = api.http.get("/v1/me/export", headers=writer.headers)
    assert export.status_code == 200, export.text
    document = export.json()
    assert document["users"]["user"]["email"] == writer.email
    [exported] = document["stories"]
    assert exported["id"] == story["id"] and exported["title"] == "The Lighthouse"
    assert len(exported["segments"]) == 2
    assert document["billing"]["usage"]["plan"] == "free"
    assert [c["title"] for c in document["conversations"]] == ["Openings"]
    assert document["projects"] == [] and document["photos"] == []
    assert document["pictures"] == {"drawings": [], "picture_stories": []}

    # Both model calls are in billing's ledger before the account goes.
    api.wait_for(lambda: places_holding(api.stack, user_id).get("billing.usage_ledger.user_id") == 2)
    anonymised_before = asyncio.run(_anonymised_ledger_entries(api.stack))
    assert places_holding(api.stack, user_id)  # the user is everywhere

    wrong = api.http.request(
        "DELETE", "/v1/me", json={"password": "not the password"}, headers=writer.headers
    )
    problem(wrong, 401)
    deleted = api.http.request(
        "DELETE", "/v1/me", json={"password": writer.password}, headers=writer.headers
    )
    assert deleted.status_code == 204, deleted.text

    login = api.http.post("/v1/auth/login", json={"email": writer.email, "password": writer.password})
    problem(login, 401)
    # Every service applies UserDeleted; then nothing holds the id.
    try:
        api.wait_for(lambda: not places_holding(api.stack, user_id), timeout=30, interval=0.5)
    except AssertionError:
        raise AssertionError(f"still held: {places_holding(api.stack, user_id)}") from None
    assert asyncio.run(_anonymised_ledger_entries(api.stack)) == anonymised_before + 2
    # The access token outlives the account by minutes; it opens nothing.
    problem(api.http.get("/v1/stories", headers=writer.headers), 401)
    problem(api.create_story(writer), 401)
    gone = api.http.get("/v1/me/export", headers=writer.headers)
    # Whichever service answers first: users (404) or billing and stories (401).
    assert gone.status_code in (401, 404), gone.text
