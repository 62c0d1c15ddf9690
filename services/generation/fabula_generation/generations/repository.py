"""All SQL of the generation service."""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from fabula_generation.generations.models import Generation


async def add_generation(session: AsyncSession, generation: Generation) -> None:
    session.add(generation)
    await session.flush()


async def get_generation(session: AsyncSession, generation_id: uuid.UUID) -> Generation | None:
    return await session.get(Generation, generation_id)
