"""deploy/: every overlay renders, validates strictly against the Kubernetes
schemas, and holds to the rules the issue sets: hardened pods, gRPC and HTTP
probes, migrations as the service's own role, NetworkPolicies that allow
exactly the architecture's edges, and (prod) autoscalers and disruption
budgets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
from deploy_support import (
    OBJECT_STORE_CLIENTS,
    COMPONENTS,
    DEPLOY,
    GATEWAY_PORT,
    GRPC_CALLS,
    LOOPBACK,
    METRICS_PORT,
    NATS_CLIENTS,
    OVERLAYS,
    REPO,
    SERVICE_PORTS,
    SERVICES,
    WORKERS,
    allowed_edges,
    by_kind,
    container_environment,
    containers,
    env_names,
    host_port,
    load_settings,
    image_view,
    pod_template,
    render,
    require_settings,
    workloads,
)
from kubernetes_validate.utils import latest_version

# The oldest Kubernetes the manifests promise to run on, and the newest the
# validator knows.
KUBERNETES_VERSIONS = ("1.32", latest_version())

# What the prod overlay expects to find in its namespace (docs/operations.md).
MANAGED_DATABASE_URL = (
    "postgresql://fabula_{}:s3cret@db.example.internal:5432/fabula?sslmode=require"
)
PROD_SECRETS = {
    **{(f"fabula-{s}-database", "url"): MANAGED_DATABASE_URL.format(s) for s in SERVICES},
    ("fabula-jwt", "secret"): "a-production-signing-key",
    ("fabula-nats", "url"): "tls://nats.example.internal:4222",
    ("fabula-mistral", "api-key"): "mistral-key",
    ("fabula-openai", "base-url"): "http://vllm.example.internal:8000/v1",
    ("fabula-openai", "api-key"): "openai-compatible-key",
    ("fabula-stripe", "api-key"): "sk_live_key",
    ("fabula-stripe", "webhook-secret"): "whsec_secret",
    ("fabula-stripe", "price-pro"): "price_pro",
    ("fabula-stripe", "price-enterprise"): "price_enterprise",
    ("fabula-media-s3", "endpoint-url"): "https://s3.eu-central-1.amazonaws.com",
    ("fabula-media-s3", "public-endpoint-url"): "https://s3.eu-central-1.amazonaws.com",
    ("fabula-media-s3", "access-key-id"): "AKIAEXAMPLE",
    ("fabula-media-s3", "secret-access-key"): "s3-secret",
}

_RENDERED: dict[str, list[dict]] = {}


def rendered(overlay: str) -> list[dict]:
    if overlay not in _RENDERED:
        path = DEPLOY / "base" if overlay == "base" else DEPLOY / "overlays" / overlay
        _RENDERED[overlay] = render(path)
    return _RENDERED[overlay]


@pytest.fixture(params=OVERLAYS)
def overlay(request) -> str:
    return request.param


def fabula_deployment(docs: list[dict], component: str) -> dict:
    return by_kind(docs, "Deployment")[component]


def main_container(docs: list[dict], component: str) -> dict:
    spec = pod_template(fabula_deployment(docs, component))["spec"]
    return next(c for c in spec["containers"] if c["name"] == component)


# --- schema ---------------------------------------------------------------------


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("target", ["base", *OVERLAYS])
def test_every_document_validates_strictly(target, version):
    failures = []
    for doc in rendered(target):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = ".".join(str(p) for p in error.path)
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {error.message}")
    assert not failures, "\n".join(failures)


# --- pods -----------------------------------------------------------------------


def test_every_pod_is_hardened(overlay):
    docs = rendered(overlay)
    assert workloads(docs)
    for name, workload in workloads(docs).items():
        spec = pod_template(workload)["spec"]
        pod_security = spec.get("securityContext", {})
        assert spec.get("automountServiceAccountToken") is False, (
            f"{name}: no service account token"
        )
        # Service links would inject e.g. GATEWAY_PORT=tcp://..., clobbering settings.
        assert spec.get("enableServiceLinks") is False, name
        assert not any(spec.get(k) for k in ("hostNetwork", "hostPID", "hostIPC")), name
        assert not any("hostPath" in v for v in spec.get("volumes", [])), name
        for container in containers(spec):
            where = f"{name}/{container['name']}"
            security = container.get("securityContext", {})
            effective = {**pod_security, **security}
            assert effective.get("runAsNonRoot") is True, where
            assert effective.get("runAsUser", 1) != 0, where
            assert effective.get("seccompProfile", {}).get("type") == "RuntimeDefault", where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("privileged") is not True, where
            assert "ALL" in security.get("capabilities", {}).get("drop", []), where
            assert not security.get("capabilities", {}).get("add"), where
            resources = container.get("resources", {})
            for section in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    assert resource in resources.get(section, {}), f"{where}: {section}.{resource}"
            image = container["image"]
            assert re.search(r":[^/]+$", image) and not image.endswith(":latest"), (
                f"{where}: {image}"
            )


def test_fabula_pods_run_as_the_images_user(overlay):
    docs = rendered(overlay)
    for component in COMPONENTS:
        image = image_view(component.dockerfile.read_text(), component.build_args)
        image_user = image.all("USER")[-1].args.split(":")[0]
        spec = pod_template(fabula_deployment(docs, component.name))["spec"]
        assert str(spec["securityContext"]["runAsUser"]) == image_user
        # A read-only root still needs somewhere to write temporary files.
        for container in containers(spec):
            assert "/tmp" in {m["mountPath"] for m in container.get("volumeMounts", [])}


def test_services_are_probed_over_grpc_health(overlay):
    docs = rendered(overlay)
    services = by_kind(docs, "Service")
    accounts = by_kind(docs, "ServiceAccount")
    for service, port in SERVICE_PORTS.items():
        container = main_container(docs, service)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports == {"grpc": port, "metrics": METRICS_PORT}
        # Readiness asks the overall health (NOT_SERVING while the database
        # is down); startup and liveness only whether the process answers.
        for probe, health_name in (
            ("startupProbe", "liveness"), ("readinessProbe", ""), ("livenessProbe", "liveness")
        ):
            grpc = container[probe].get("grpc")
            assert grpc and grpc["port"] == port and grpc.get("service", "") == health_name, (
                f"{service}: {probe}"
            )
        # Headless: DNS answers with every ready pod, so callers balance per call.
        assert services[service]["spec"]["clusterIP"] == "None"
        assert services[service]["spec"]["ports"] == [
            {
                "name": "grpc",
                "port": port,
                "targetPort": "grpc",
                "protocol": "TCP",
                "appProtocol": "kubernetes.io/h2c",
            }
        ]
        spec = pod_template(fabula_deployment(docs, service))["spec"]
        assert accounts[spec["serviceAccountName"]]["automountServiceAccountToken"] is False
        annotations = pod_template(fabula_deployment(docs, service))["metadata"]["annotations"]
        assert annotations["prometheus.io/port"] == str(METRICS_PORT)


def test_the_gateway_is_probed_over_http_and_scraped_on_its_metrics_port(overlay):
    docs = rendered(overlay)
    container = main_container(docs, "gateway")
    assert container["ports"] == [
        {"name": "http", "containerPort": GATEWAY_PORT, "protocol": "TCP"},
        {"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"},
    ]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    # The Service (what the ingress exposes) carries the API only.
    service_ports = by_kind(docs, "Service")["gateway"]["spec"]["ports"]
    assert [p["targetPort"] for p in service_ports] == ["http"]
    annotations = pod_template(fabula_deployment(docs, "gateway"))["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(METRICS_PORT)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_pods_drain_before_they_are_killed(overlay):
    docs = rendered(overlay)
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    grace = float(config["SHUTDOWN_GRACE_SECONDS"])
    for component in COMPONENTS:
        spec = pod_template(fabula_deployment(docs, component.name))["spec"]
        container = main_container(docs, component.name)
        pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
        assert pre_stop[0] == "sleep"
        # preStop, then the grace period for calls in flight, then the flush.
        assert spec["terminationGracePeriodSeconds"] >= int(pre_stop[1]) + grace + 10, (
            component.name
        )


# --- migrations and configuration -------------------------------------------------


def test_migrations_run_first_as_the_services_own_role(overlay):
    docs = rendered(overlay)
    for service in SERVICES:
        spec = pod_template(fabula_deployment(docs, service))["spec"]
        migrate = spec["initContainers"][0]
        assert migrate["command"] == ["python", "-m", "fabula_common.prestart", service]
        assert migrate["image"] == main_container(docs, service)["image"]
        secrets = {
            e["valueFrom"]["secretKeyRef"]["name"]
            for c in containers(spec)
            for e in c.get("env", [])
            if "secretKeyRef" in e.get("valueFrom", {})
        }
        database_secrets = {s for s in secrets if "-database" in s}
        assert len(database_secrets) == 1 and database_secrets.pop().startswith(
            f"fabula-{service}-database"
        ), f"{service} may hold only its own database credentials"


@pytest.mark.parametrize("component", [c.name for c in COMPONENTS])
def test_each_process_gets_an_environment_its_settings_accept(overlay, component):
    docs = rendered(overlay)
    container = main_container(docs, component)
    env = container_environment(docs, container, PROD_SECRETS)
    settings = load_settings(component, env)
    assert settings.environment.value == ("production" if overlay == "prod" else "development")
    if overlay == "prod":
        settings.check_production_ready()  # SystemExit if a secret holds its default

    if component == "gateway":
        assert (settings.host, settings.port) == ("0.0.0.0", GATEWAY_PORT)
        assert (settings.metrics_host, settings.metrics_port) == ("0.0.0.0", METRICS_PORT)
    else:
        assert (settings.grpc_host, settings.grpc_port) == ("0.0.0.0", SERVICE_PORTS[component])
        assert settings.metrics_port == METRICS_PORT
        database = urlsplit(settings.database_url)
        assert database.hostname not in LOOPBACK and database.username == f"fabula_{component}"
        spec = pod_template(fabula_deployment(docs, component))["spec"]
        migrate_env = container_environment(docs, spec["initContainers"][0], PROD_SECRETS)
        assert load_settings(component, migrate_env).database_url == settings.database_url
    if component in NATS_CLIENTS:
        assert urlsplit(settings.nats_url).hostname not in LOOPBACK
    for peer in GRPC_CALLS.get(component, ()):
        assert host_port(getattr(settings, f"{peer}_addr")) == (peer, SERVICE_PORTS[peer])


@pytest.mark.parametrize("component", [c.name for c in COMPONENTS])
def test_manifests_set_only_variables_the_process_reads(overlay, component):
    """A misspelt variable would silently leave the default in place."""
    docs = rendered(overlay)
    read = env_names(require_settings(component))
    spec = pod_template(fabula_deployment(docs, component))["spec"]
    for container in containers(spec):
        unknown = {e["name"] for e in container.get("env", [])} - read
        assert not unknown, f"{component}/{container['name']}: no setting reads {sorted(unknown)}"
    shared = set(next(iter(by_kind(docs, "ConfigMap").values()))["data"])
    assert shared <= read, f"fabula-config: {component} reads none of {sorted(shared - read)}"


# --- network ----------------------------------------------------------------------


def expected_edges(overlay: str) -> set[tuple[str, str, int, str]]:
    edges = {
        ("external", "gateway", GATEWAY_PORT, "TCP"),
        ("monitoring", "gateway", GATEWAY_PORT, "TCP"),
    }
    for caller, callees in GRPC_CALLS.items():
        edges |= {(caller, callee, SERVICE_PORTS[callee], "TCP") for callee in callees}
    edges |= {("monitoring", c, METRICS_PORT, "TCP") for c in (*SERVICES, "gateway")}
    edges.add(("generation", "external", 443, "TCP"))  # the model provider
    edges.add(("generation-worker", "external", 443, "TCP"))  # the model provider
    edges.add(("billing", "external", 443, "TCP"))  # Stripe
    edges.add(("users", "external", 443, "TCP"))  # identity providers
    for client in OBJECT_STORE_CLIENTS:
        edges.add((client, "external", 443, "TCP"))  # the S3-compatible object store
    if overlay == "dev":
        database, nats = "postgres", "nats"
        extra = {"postgres", "nats", "bootstrap", "minio", "minio-bucket"}
        edges.add(("bootstrap", "postgres", 5432, "TCP"))
        # The overlay's MinIO: media's object store, and the Job making its bucket.
        edges |= {(c, "minio", 9000, "TCP") for c in (*OBJECT_STORE_CLIENTS, "minio-bucket")}
    else:
        database, nats, extra = "external", "external", set()
    edges |= {(s, database, 5432, "TCP") for s in (*SERVICES, *WORKERS)}
    edges |= {(s, nats, 4222, "TCP") for s in NATS_CLIENTS}
    for pod in {*SERVICES, "gateway", *WORKERS, *extra}:
        edges |= {(pod, "kube-dns", 53, "UDP"), (pod, "kube-dns", 53, "TCP")}
    return edges


def test_network_policies_deny_by_default(overlay):
    policies = by_kind(rendered(overlay), "NetworkPolicy")
    default_deny = [
        p
        for p in policies.values()
        if p["spec"]["podSelector"] == {}
        and set(p["spec"]["policyTypes"]) == {"Ingress", "Egress"}
        and not p["spec"].get("ingress")
        and not p["spec"].get("egress")
    ]
    assert default_deny, "a policy selecting every pod and allowing nothing"


def test_network_policies_allow_exactly_the_architectures_edges(overlay):
    allowed = allowed_edges(rendered(overlay))
    expected = expected_edges(overlay)
    assert allowed - expected == set(), "allowed but not part of the architecture"
    assert expected - allowed == set(), "part of the architecture but blocked"


def test_namespaces_enforce_the_restricted_pod_security_standard(overlay):
    docs = rendered(overlay)
    namespaces = by_kind(docs, "Namespace")
    assert len(namespaces) == 1
    (namespace,) = namespaces.values()
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    for doc in docs:
        if doc["kind"] != "Namespace":
            assert doc["metadata"]["namespace"] == namespace["metadata"]["name"], doc["metadata"][
                "name"
            ]


# --- dev ----------------------------------------------------------------------------


def test_dev_runs_postgres_nats_minio_and_the_bootstrap_inside_the_cluster():
    docs = rendered("dev")
    stateful = by_kind(docs, "StatefulSet")
    assert set(stateful) == {"postgres", "nats", "minio"}
    nats = pod_template(stateful["nats"])["spec"]["containers"][0]
    assert "--jetstream" in nats["command"]
    for name in ("postgres", "nats", "minio"):
        assert stateful[name]["spec"]["replicas"] == 1
        assert stateful[name]["spec"]["volumeClaimTemplates"], f"{name} keeps its data on a volume"
    services = by_kind(docs, "Service")
    assert services["postgres"]["spec"]["ports"][0]["port"] == 5432
    assert services["nats"]["spec"]["ports"][0]["port"] == 4222
    assert services["minio"]["spec"]["ports"][0]["port"] == 9000

    # Media stores its files in that MinIO, in the bucket the Job creates, with
    # the credentials MinIO was started with.
    media = container_environment(docs, main_container(docs, "media"), {})
    assert urlsplit(media["MEDIA_S3_ENDPOINT_URL"]).netloc == "minio:9000"
    minio = container_environment(docs, pod_template(stateful["minio"])["spec"]["containers"][0], {})
    assert (media["MEDIA_S3_ACCESS_KEY_ID"], media["MEDIA_S3_SECRET_ACCESS_KEY"]) == (
        minio["MINIO_ROOT_USER"],
        minio["MINIO_ROOT_PASSWORD"],
    )
    mc = pod_template(by_kind(docs, "Job")["minio-bucket"])["spec"]["containers"][0]
    assert container_environment(docs, mc, {})["MEDIA_S3_BUCKET"] == media["MEDIA_S3_BUCKET"]

    job = by_kind(docs, "Job")["bootstrap"]
    bootstrap = pod_template(job)["spec"]["containers"][0]
    assert bootstrap["command"] == ["python", "-m", "fabula_common.provision"]
    env = container_environment(docs, bootstrap, {})
    assert urlsplit(env["POSTGRES_ADMIN_URL"]).hostname == "postgres"
    for service in SERVICES:
        url = container_environment(docs, main_container(docs, service), {})[
            f"{service.upper()}_DATABASE_URL"
        ]
        assert urlsplit(url).password == env[f"{service.upper()}_DB_PASSWORD"], (
            f"bootstrap gives fabula_{service} the password its service connects with"
        )


def test_dev_generates_every_secret_it_references():
    docs = rendered("dev")
    secrets = by_kind(docs, "Secret")
    for name, workload in workloads(docs).items():
        for container in containers(pod_template(workload)["spec"]):
            for entry in container.get("env", []):
                ref = entry.get("valueFrom", {}).get("secretKeyRef")
                if ref and not ref.get("optional"):
                    assert ref["name"] in secrets, f"{name}: Secret {ref['name']} is not generated"
                    assert ref["key"] in secrets[ref["name"]]["data"], (
                        f"{name}: {ref['name']}/{ref['key']}"
                    )


# --- prod ---------------------------------------------------------------------------


def test_prod_reads_exactly_the_documented_secrets():
    docs = rendered("prod")
    assert not by_kind(docs, "Secret"), "production secrets are never committed"
    referenced = {
        (e["valueFrom"]["secretKeyRef"]["name"], e["valueFrom"]["secretKeyRef"]["key"])
        for workload in workloads(docs).values()
        for container in containers(pod_template(workload)["spec"])
        for e in container.get("env", [])
        if "secretKeyRef" in e.get("valueFrom", {})
    }
    assert referenced == set(PROD_SECRETS)
    operations = (REPO / "docs" / "operations.md").read_text()
    for name, key in PROD_SECRETS:
        assert f"`{name}`" in operations and f"`{key}`" in operations, (
            f"docs/operations.md: {name}/{key}"
        )


def test_prod_autoscales_the_gateway_and_generation():
    docs = rendered("prod")
    deployments = by_kind(docs, "Deployment")
    autoscalers = by_kind(docs, "HorizontalPodAutoscaler")
    assert {h["spec"]["scaleTargetRef"]["name"] for h in autoscalers.values()} == {
        "gateway",
        "generation",
    }
    for hpa in autoscalers.values():
        assert hpa["apiVersion"] == "autoscaling/v2"
        target = hpa["spec"]["scaleTargetRef"]
        assert target["kind"] == "Deployment" and target["name"] in deployments
        assert hpa["spec"]["minReplicas"] >= 2
        # A replicas field would be reapplied over the autoscaler's choice.
        assert "replicas" not in deployments[target["name"]]["spec"]
    for service in ("users", "stories", "billing"):
        assert deployments[service]["spec"]["replicas"] >= 2


def test_prod_limits_disruption_of_every_component():
    docs = rendered("prod")
    budgets = by_kind(docs, "PodDisruptionBudget")
    for name in (*(c.name for c in COMPONENTS), *WORKERS):
        labels = pod_template(fabula_deployment(docs, name))["metadata"]["labels"]
        matching = [
            b
            for b in budgets.values()
            if all(labels.get(k) == v for k, v in b["spec"]["selector"]["matchLabels"].items())
        ]
        assert len(matching) == 1, name
        assert matching[0]["spec"].get("maxUnavailable") == 1


def test_prod_runs_a_fixed_number_of_job_workers_apart_from_the_generation_api():
    docs = rendered("prod")
    worker = fabula_deployment(docs, "generation-worker")
    # Each worker runs one job at a time: replicas are the jobs running at
    # once, set by the operator (CPU tells nothing about the queue).
    assert worker["spec"]["replicas"] >= 2
    autoscalers = by_kind(docs, "HorizontalPodAutoscaler").values()
    assert "generation-worker" not in {h["spec"]["scaleTargetRef"]["name"] for h in autoscalers}
    container = main_container(docs, "generation-worker")
    generation = main_container(docs, "generation")
    assert container["image"] == generation["image"]


def test_prod_runs_in_production_mode_from_released_images():
    docs = rendered("prod")
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert config["FABULA_ENV"] == "production"
    for component in COMPONENTS:
        spec = pod_template(fabula_deployment(docs, component.name))["spec"]
        for container in containers(spec):
            repository, _, tag = container["image"].rpartition(":")
            assert "/" in repository, f"{container['image']}: pull from a registry"
            assert re.fullmatch(r"\d+\.\d+\.\d+.*", tag), f"{container['image']}: a release tag"


# --- the job worker -----------------------------------------------------------------


@pytest.mark.parametrize("worker", WORKERS)
def test_the_job_worker_runs_the_services_image_and_settings_and_serves_nothing(
    overlay, worker
):
    service, module = WORKERS[worker]
    docs = rendered(overlay)
    deployment = fabula_deployment(docs, worker)
    template = pod_template(deployment)
    container = main_container(docs, worker)

    assert container["command"] == ["python", "-m", module]
    assert container["image"] == main_container(docs, service)["image"]
    # Its own pods: no Service (nor the generation API's) selects them.
    assert "ports" not in container
    for svc in by_kind(docs, "Service").values():
        selector = svc["spec"].get("selector", {})
        assert not all(template["metadata"]["labels"].get(k) == v for k, v in selector.items()), (
            f"Service {svc['metadata']['name']} routes to the worker"
        )
    spec = template["spec"]
    assert by_kind(docs, "ServiceAccount")[spec["serviceAccountName"]][
        "automountServiceAccountToken"
    ] is False
    # The schema at this release's head before it takes a job, as its own role.
    migrate = spec["initContainers"][0]
    assert migrate["command"] == ["python", "-m", "fabula_common.prestart", service]
    assert migrate["image"] == container["image"]
    # No port to probe: liveness runs the process check.
    assert module in " ".join(container["livenessProbe"]["exec"]["command"])
    # It gives its job back on SIGTERM within the grace period, then flushes.
    config = next(iter(by_kind(docs, "ConfigMap").values()))["data"]
    assert spec["terminationGracePeriodSeconds"] >= float(config["SHUTDOWN_GRACE_SECONDS"]) + 10

    env = container_environment(docs, container, PROD_SECRETS)
    settings = load_settings(service, env)
    if overlay == "prod":
        settings.check_production_ready()
    database = urlsplit(settings.database_url)
    assert database.hostname not in LOOPBACK and database.username == f"fabula_{service}"
    assert urlsplit(settings.nats_url).hostname not in LOOPBACK
    for peer in GRPC_CALLS.get(worker, ()):
        assert host_port(getattr(settings, f"{peer}_addr")) == (peer, SERVICE_PORTS[peer])
    unknown = {e["name"] for c in containers(spec) for e in c.get("env", [])} - env_names(
        require_settings(service)
    )
    assert not unknown, f"{worker}: no setting reads {sorted(unknown)}"


def test_the_worker_reaches_what_it_needs_and_nothing_reaches_it(overlay):
    allowed = allowed_edges(rendered(overlay))
    database = nats = "postgres" if overlay == "dev" else "external"
    if overlay == "dev":
        nats = "nats"

    assert {e for e in allowed if e[0] == "generation-worker"} == {
        ("generation-worker", database, 5432, "TCP"),
        ("generation-worker", nats, 4222, "TCP"),
        ("generation-worker", "billing", SERVICE_PORTS["billing"], "TCP"),
        ("generation-worker", "external", 443, "TCP"),  # the model provider
        ("generation-worker", "kube-dns", 53, "UDP"),
        ("generation-worker", "kube-dns", 53, "TCP"),
    }
    # Nothing listens on it, and even so its ingress is closed: every policy
    # selecting it allows no ingress, and one isolates it for ingress.
    selecting = [
        p
        for p in by_kind(rendered(overlay), "NetworkPolicy").values()
        if p["spec"]["podSelector"].get("matchLabels", {}).get("app.kubernetes.io/name")
        == "generation-worker"
        or p["spec"]["podSelector"] == {}
    ]
    assert any("Ingress" in p["spec"]["policyTypes"] for p in selecting)
    assert not any(p["spec"].get("ingress") for p in selecting)
    assert not {e for e in allowed if e[1] == "generation-worker"}
