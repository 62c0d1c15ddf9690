"""docker-compose.yml: secrets come from .env and are required, every image
builds from an existing Dockerfile, things start in the right order, and each
process gets an environment its settings accept, with the ports the
architecture gives it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import pytest
import yaml
from deploy_support import (
    COMPONENTS,
    COMPOSE_FILE,
    ENV_EXAMPLE,
    CALLS_NOT_NEEDED_AT_START,
    GRPC_CALLS,
    METRICS_PORT,
    NATS_CLIENTS,
    OBJECT_STORE_CLIENTS,
    REPO,
    SERVICE_PORTS,
    SERVICES,
    MissingVariable,
    compose_variables,
    default_port,
    env_names,
    example_env_with_secrets,
    host_port,
    load_compose,
    load_settings,
    read_env_file,
    require_settings,
)

ONE_SHOT = {"bootstrap", "minio-bucket", *(f"{s}-migrate" for s in SERVICES)}
WORKER = "generation-worker"
LONG_RUNNING = {*SERVICES, "gateway", WORKER}


@pytest.fixture(scope="module")
def compose() -> dict:
    return load_compose(example_env_with_secrets())


def _seconds(duration: str) -> float:
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    return sum(float(n) * units[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(ms|s|m|h)", duration))


def test_compose_refuses_to_start_without_each_secret():
    example = read_env_file(ENV_EXAMPLE)
    required = {
        name for name, ops in compose_variables(COMPOSE_FILE.read_text()).items() if ":?" in ops
    }
    assert required == {name for name, value in example.items() if value == ""}, (
        "the secrets .env.example leaves empty are exactly those compose requires"
    )
    assert {
        "POSTGRES_PASSWORD",
        "JWT_SECRET",
        *(f"{s.upper()}_DB_PASSWORD" for s in SERVICES),
    } <= required
    filled = example_env_with_secrets()
    for name in sorted(required):
        with pytest.raises(MissingVariable) as missing:
            load_compose({**filled, name: ""})
        assert missing.value.name == name


def test_every_variable_compose_reads_is_documented_in_env_example():
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), re.MULTILINE))
    interpolated = set(compose_variables(COMPOSE_FILE.read_text()))
    raw = yaml.safe_load(COMPOSE_FILE.read_text())
    passed_through = {
        key
        for service in raw["services"].values()
        for key, value in (service.get("environment") or {}).items()
        if value is None
    }
    assert interpolated | passed_through <= documented, sorted(
        (interpolated | passed_through) - documented
    )


def test_every_image_builds_from_the_one_dockerfile_with_its_component(compose):
    services = compose["services"]
    build_of_image: dict[str, dict] = {}
    for name, service in services.items():
        if "build" not in service:
            continue
        build = service["build"]
        assert build["context"] == ".", f"{name}: images build from the repository root"
        assert (REPO / build["dockerfile"]).is_file(), f"{name}: {build['dockerfile']} is missing"
        image = service["image"].rsplit(":", 1)[0]
        assert build_of_image.setdefault(image, build) == build, (
            f"{image} is built two different ways"
        )
    for component in COMPONENTS:
        build = services[component.name]["build"]
        assert REPO / build["dockerfile"] == component.dockerfile
        assert build["args"] == component.build_args
        assert services[component.name]["image"].startswith(f"fabula-{component.name}:")


def test_depends_on_orders_the_start(compose):
    services = compose["services"]

    def conditions(name: str) -> dict[str, str]:
        return {
            dep: spec["condition"] for dep, spec in services[name].get("depends_on", {}).items()
        }

    assert conditions("bootstrap") == {"postgres": "service_healthy"}
    for service in SERVICES:
        assert conditions(f"{service}-migrate") == {"bootstrap": "service_completed_successfully"}
        expected = {f"{service}-migrate": "service_completed_successfully"}
        if service in NATS_CLIENTS:
            expected["nats"] = "service_healthy"
        if service in OBJECT_STORE_CLIENTS:
            expected["minio-bucket"] = "service_completed_successfully"
        expected.update(
            {
                peer: "service_healthy"
                for peer in GRPC_CALLS.get(service, ())
                if (service, peer) not in CALLS_NOT_NEEDED_AT_START
            }
        )
        assert conditions(service) == expected
    assert conditions("gateway") == {s: "service_healthy" for s in SERVICES}

    for name in services:
        for dep, condition in conditions(name).items():
            target = services[dep]
            if condition == "service_healthy":
                assert "test" in target.get("healthcheck", {}), (
                    f"{name} waits for {dep}, which has no healthcheck"
                )
            if condition == "service_completed_successfully":
                assert dep in ONE_SHOT and target.get("restart") == "no"
    for name in ONE_SHOT:
        assert services[name].get("restart") == "no"


@pytest.mark.parametrize("component", [c.name for c in COMPONENTS])
def test_each_process_gets_an_environment_its_settings_accept(compose, component):
    env = compose["services"][component]["environment"]
    settings = load_settings(component, env)
    if settings.environment.value == "production":
        settings.check_production_ready()  # SystemExit if a secret holds its default

    if component != "gateway":
        assert (settings.grpc_host, settings.grpc_port) == ("0.0.0.0", SERVICE_PORTS[component])
        assert settings.metrics_port == METRICS_PORT
        database = urlsplit(settings.database_url)
        assert (database.hostname, database.port, database.username) == (
            "postgres",
            5432,
            f"fabula_{component}",
        )
    else:
        assert (settings.host, settings.port) == ("0.0.0.0", default_port("gateway"))
    if component in NATS_CLIENTS:
        assert urlsplit(settings.nats_url).hostname == "nats"
    for peer in GRPC_CALLS.get(component, ()):
        assert host_port(getattr(settings, f"{peer}_addr")) == (peer, SERVICE_PORTS[peer])


@pytest.mark.parametrize("component", [c.name for c in COMPONENTS])
def test_compose_sets_only_variables_the_process_reads(component):
    """A misspelt variable would silently leave the default in place."""
    read = env_names(require_settings(component))
    services = yaml.safe_load(COMPOSE_FILE.read_text())["services"]
    for container in (component, f"{component}-migrate"):
        if container in services:
            # Every name, the pass-through ones (no value) included.
            unknown = set(services[container]["environment"]) - read
            assert not unknown, f"{container}: no setting reads {sorted(unknown)}"


def test_model_provider_settings_pass_through_from_env_file():
    env = {
        **example_env_with_secrets(),
        "GENERATION_PROVIDER": "mistral",
        "MISTRAL_API_KEY": "a-key",
        "MISTRAL_MODEL": "mistral-large-latest",
    }
    generation = load_compose(env)["services"]["generation"]["environment"]
    settings = load_settings("generation", generation)
    assert settings.mistral_api_key.get_secret_value() == "a-key"
    assert (settings.provider, settings.mistral_model) == ("mistral", "mistral-large-latest")
    # Unset in .env: not passed at all, so the service's defaults hold.
    assert "MISTRAL_SERVER_URL" not in generation


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_run_as_the_service_role_on_the_same_database(compose, service):
    services = compose["services"]
    migrate = services[f"{service}-migrate"]
    assert migrate["command"] == ["python", "-m", "fabula_common.prestart", service]
    assert migrate["image"] == services[service]["image"]
    url_variable = f"{service.upper()}_DATABASE_URL"
    assert migrate["environment"][url_variable] == services[service]["environment"][url_variable]
    bootstrap = services["bootstrap"]["environment"]
    role_password = urlsplit(services[service]["environment"][url_variable]).password
    assert bootstrap[f"{service.upper()}_DB_PASSWORD"] == role_password, (
        "bootstrap sets the password the service uses"
    )
    assert "postgres:5432" in bootstrap["POSTGRES_ADMIN_URL"]


def test_ports_agree_with_the_settings(compose):
    services = compose["services"]
    for service in SERVICES:
        port = SERVICE_PORTS[service]
        assert {int(p) for p in services[service]["expose"]} == {port, METRICS_PORT}
        assert f"127.0.0.1:{port}" in " ".join(services[service]["healthcheck"]["test"])
    published = services["gateway"]["ports"]
    # The API only: the gateway's metrics are for other containers.
    assert published == ["8000:8000"]
    assert [int(p) for p in services["gateway"]["expose"]] == [METRICS_PORT]
    gateway = load_settings("gateway", services["gateway"]["environment"])
    assert (gateway.metrics_host, gateway.metrics_port) == ("0.0.0.0", METRICS_PORT)
    assert "127.0.0.1:8000/readyz" in " ".join(services["gateway"]["healthcheck"]["test"])
    exposed_to_host = [name for name, s in services.items() if s.get("ports") and name != "gateway"]
    # Besides the API, only the object store: clients send and fetch files
    # there directly, through presigned URLs.
    assert exposed_to_host == ["minio"], "only the gateway and MinIO are reachable from the host"
    assert services["minio"]["ports"] == ["9000:9000"]


def test_application_containers_are_hardened_and_drain_before_being_killed(compose):
    services = compose["services"]
    grace = float(services["users"]["environment"]["SHUTDOWN_GRACE_SECONDS"])
    for name in LONG_RUNNING | ONE_SHOT:
        service = services[name]
        assert service.get("read_only") is True, name
        assert service.get("cap_drop") == ["ALL"], name
        assert "no-new-privileges:true" in service.get("security_opt", []), name
    for name in LONG_RUNNING:
        # Docker's default is 10s: too short for the grace period plus the outbox flush.
        assert _seconds(services[name]["stop_grace_period"]) >= grace + 10, name


def test_infrastructure_images_are_pinned_and_persistent(compose):
    services = compose["services"]
    for name in ("postgres", "nats"):
        image = services[name]["image"]
        assert re.search(r":\d+\.\d+", image), f"{name}: pin a version, got {image}"
        assert services[name]["volumes"], f"{name} keeps its data in a volume"
    assert {"--jetstream", "--store_dir=/data"} <= set(services["nats"]["command"])
    assert set(compose["volumes"]) == {"postgres-data", "nats-data", "minio-data"}
    # MinIO's releases are dated tags.
    for name in ("minio", "minio-bucket"):
        assert re.search(r":RELEASE\.\d{4}-", services[name]["image"]), services[name]["image"]
    assert services["minio"]["volumes"] and "test" in services["minio"]["healthcheck"]


def test_the_job_worker_runs_the_generation_image_with_generations_settings(compose):
    services = compose["services"]
    worker, generation = services[WORKER], services["generation"]

    assert worker["command"] == ["python", "-m", "fabula_generation.worker"]
    assert (worker["image"], worker["build"]) == (generation["image"], generation["build"])
    assert worker["environment"] == generation["environment"]
    load_settings("generation", worker["environment"]).check_production_ready()
    assert {dep: spec["condition"] for dep, spec in worker["depends_on"].items()} == {
        "generation-migrate": "service_completed_successfully",
        "nats": "service_healthy",
        # Every stage's model call is metered with billing.
        "billing": "service_healthy",
    }
    # Nothing calls the worker: no port, and no healthcheck of a port.
    assert "ports" not in worker and "expose" not in worker
    assert worker["restart"] == "unless-stopped"
    assert "grpc" not in " ".join(worker["healthcheck"]["test"])


def _worker_healthcheck(compose, pid: int) -> int:
    """The worker's healthcheck run against process `pid` (it reads PID 1 in its container)."""
    command = compose["services"][WORKER]["healthcheck"]["test"]
    assert command[:3] == ["CMD", "python", "-c"]
    code = command[3].replace("/proc/1/", f"/proc/{pid}/")
    return subprocess.run([sys.executable, "-c", code], timeout=30).returncode


def test_the_worker_healthcheck_fails_when_the_worker_is_not_running(compose):
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    worker = subprocess.Popen([*sleeper, "-m", "fabula_generation.worker"])
    other = subprocess.Popen(sleeper)
    try:
        assert _worker_healthcheck(compose, worker.pid) == 0
        assert _worker_healthcheck(compose, other.pid) == 1  # something else is PID 1
        os.kill(worker.pid, signal.SIGSTOP)  # stopped: it takes no job
        try:
            assert _worker_healthcheck(compose, worker.pid) == 1
        finally:
            os.kill(worker.pid, signal.SIGCONT)
    finally:
        for process in (worker, other):
            process.kill()
            process.wait()
