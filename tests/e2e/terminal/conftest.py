"""The Python client and the `fabula` command against one running stack.

This package's `stack` replaces the e2e session's for its tests (so `api`
and `problem` work as elsewhere): one stack for both modules, stopped when
they are done, whose offline model writes a token every few milliseconds, so
that text visibly arrives as it is written and a story is busy long enough
to be refused and retried.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fabula_devtools.stack import TEST_STACK, Stack, stack_environment, start_stack, stop_stack


@pytest.fixture(scope="package")
def stack(tmp_path_factory) -> Iterator[Stack]:
    running = start_stack(
        # A loaded machine hashes passwords slowly: a wider deadline than the
        # e2e default (3 s) keeps logins from timing out into 503s.
        stack_environment(
            **TEST_STACK, GENERATION_OFFLINE_TOKEN_DELAY_MS="5", GRPC_DEADLINE_SECONDS="10"
        ),
        tmp_path_factory.mktemp("terminal-stack") / "fabula.log",
        timeout=200,  # a busy machine (CI runs the suite on two cores) starts it slowly
    )
    yield running
    assert stop_stack(running) == 0, running.log_tail()
