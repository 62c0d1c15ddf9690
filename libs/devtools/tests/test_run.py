"""`make run`'s children: the job worker is one of them, started and
restarted like the services."""

from __future__ import annotations

import time

from fabula_devtools.run import CHILDREN, RestartPolicy, Supervisor, environment, stop_all


def test_make_run_starts_the_job_worker_as_a_process_of_its_own():
    modules = dict(CHILDREN)
    order = [name for name, _ in CHILDREN]

    assert modules["generation-worker"] == "fabula_generation.worker"
    # After the services it calls (they stop after it) and before the gateway (it stops first).
    for service in ("billing", "generation"):
        assert order.index(service) < order.index("generation-worker")
    assert order.index("generation-worker") < order.index("gateway") == len(order) - 1


def test_the_worker_gets_the_generation_services_settings(monkeypatch):
    for variable in ("GENERATION_DATABASE_URL", "BILLING_ADDR", "NATS_URL"):
        monkeypatch.delenv(variable, raising=False)

    env = environment()

    # Every child gets the same environment: the worker reads generation's
    # database and calls billing as the generation service does.
    assert env["GENERATION_DATABASE_URL"].startswith("postgresql")
    assert env["BILLING_ADDR"] == f"127.0.0.1:{env['BILLING_GRPC_PORT']}"
    assert env["NATS_URL"]


def test_a_worker_that_dies_is_started_again_after_a_backoff(capsys):
    supervisor = Supervisor(RestartPolicy(initial=0.05, maximum=1, stable=60))
    # A module that ends at once stands in for a worker that dies.
    child = supervisor.start("generation-worker", "platform", environment())
    first_pid = child.process.pid
    try:
        child.process.wait(timeout=30)
        supervisor.check()  # notices the death, schedules the restart
        assert child.restart_at is not None
        time.sleep(0.1)
        supervisor.check()  # the restart is due

        assert child.process.pid != first_pid
        out = capsys.readouterr().out
        assert "make run: generation-worker exited with code 0" in out
        assert "restarting in 0.05s" in out
        assert "make run: generation-worker restarted" in out
    finally:
        supervisor.stopping = True
        stop_all(supervisor.children, grace=1)
