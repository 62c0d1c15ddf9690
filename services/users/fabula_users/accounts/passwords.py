"""Password hashing with argon2id, off the event loop.

Hashing is deliberately slow and memory-hungry, so it runs on a bounded
thread pool (argon2-cffi releases the GIL): the event loop keeps serving and
at most `password_hash_workers` hashes hold memory at once.
"""

from __future__ import annotations

import asyncio
import secrets
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError

from fabula_users.settings import Settings


class PasswordHashing:
    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_cost_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )
        self._executor = ThreadPoolExecutor(
            max_workers=settings.password_hash_workers, thread_name_prefix="argon2"
        )
        # Verified against when the email is unknown, so that answer takes as
        # long as a wrong password and does not reveal which emails exist.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    async def _run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def hash(self, password: str) -> str:
        return await self._run(self._hasher.hash, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(self._verify, password_hash, password)

    async def verify_dummy(self, password: str) -> None:
        """Spend the time of one verification and learn nothing."""
        await self._run(self._verify, self._dummy_hash, password)

    def needs_rehash(self, password_hash: str) -> bool:
        """True when the hash was made with other parameters than today's."""
        return self._hasher.check_needs_rehash(password_hash)

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self._hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
