"""Password hashing with argon2id, off the event loop, with admission control.

Hashing is deliberately slow and memory-hungry, so it runs on a bounded
thread pool (argon2-cffi releases the GIL): the event loop keeps serving and
at most `password_hash_workers` hashes hold memory at once.

The pool's queue is bounded too: beyond `password_hash_queue` hashes waiting
for a worker, a login or registration is refused at once (TooBusy, with a
retry delay) rather than queued behind a storm of logins until its caller's
deadline passes. Calls that do not hash (refresh, lookups) never wait here.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from fabula_common.errors import TooBusy

from fabula_users.settings import Settings

TOO_BUSY = "too many logins at once; retry shortly"


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
        # Hashes running or waiting for a worker. Counted down when the work
        # itself ends, not when its caller stops waiting (a cancelled call's
        # hash may still be running and holding its memory).
        self._admitted = 0
        self._limit = settings.password_hash_workers + settings.password_hash_queue
        self._lock = threading.Lock()
        # Verified against when the email is unknown, so that answer takes as
        # long as a wrong password and does not reveal which emails exist.
        self._dummy_hash = self._hasher.hash(secrets.token_urlsafe(16))

    def check_room(self) -> None:
        """Refuse now (TooBusy) when no hash could be admitted: lets a call
        that will hash be turned away before it does any other work."""
        if self._admitted >= self._limit:
            raise TooBusy(TOO_BUSY)

    async def _run(self, fn, *args):
        with self._lock:
            self.check_room()
            self._admitted += 1
        try:
            work = self._executor.submit(fn, *args)
        except BaseException:
            self._release()
            raise
        work.add_done_callback(self._release)
        # Cancelling the wait cancels the work too if no worker has taken it yet.
        return await asyncio.wrap_future(work)

    def _release(self, _work: Future | None = None) -> None:
        with self._lock:
            self._admitted -= 1

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
