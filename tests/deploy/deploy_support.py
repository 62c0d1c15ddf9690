"""Helpers of the deployment checks: the architecture they hold the
manifests to, the services' settings classes, and settings built from exactly
the environment a container would get."""

from __future__ import annotations

import importlib
import inspect
import os
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from fabula_common.settings import CommonSettings, ServiceSettings

REPO = Path(__file__).resolve().parents[2]

# The gRPC services and the ports the architecture gives them.
SERVICE_PORTS = {
    "users": 50051, "stories": 50052, "generation": 50053, "billing": 50054, "media": 50055,
}
SERVICES = tuple(SERVICE_PORTS)
GATEWAY_PORT = 8000
METRICS_PORT = 9090

# Processes that run a service's image and settings with another command,
# serve nothing, and scale apart: worker -> (its service, its module).
WORKERS = {
    "generation-worker": ("generation", "fabula_generation.worker"),
    "media-worker": ("media", "fabula_media.worker"),
}

# Who calls whom (gRPC), and who talks to NATS; every service (and worker) has a database.
GRPC_CALLS = {
    "gateway": {"users", "stories", "generation", "billing", "media"},
    # Generation for story text; media for a drawing's picture.
    "stories": {"generation", "media"},
    # Generation meters every model call with billing.
    "generation": {"billing"},
    # Billing's reservation expiry asks generation's record before giving quota back.
    "billing": {"generation"},
    # A job's hold (reserve, release) with billing.
    "generation-worker": {"billing"},
}
# Calls a service does without while the callee is down (a background worker
# retrying them): no start order for these, which would be a cycle.
CALLS_NOT_NEEDED_AT_START = {("billing", "generation")}
# Who uses the S3-compatible object store (compose: MinIO, once its bucket exists).
OBJECT_STORE_CLIENTS = {"media", "media-worker"}
NATS_CLIENTS = {
    "users", "stories", "generation", "billing", "media", "generation-worker", "media-worker",
}


# One Dockerfile builds every image; the build argument SERVICE picks the component.
DOCKERFILE = REPO / "Dockerfile"


@dataclass(frozen=True)
class Component:
    """A process with an image of its own: one of the services or the gateway."""

    name: str
    package: str

    @property
    def is_gateway(self) -> bool:
        return self.name == "gateway"

    @property
    def dockerfile(self) -> Path:
        return DOCKERFILE

    @property
    def build_args(self) -> dict[str, str]:
        return {"SERVICE": self.name}


COMPONENTS = [
    *(Component(s, f"fabula_{s}") for s in SERVICES),
    Component("gateway", "fabula_gateway"),
]


def settings_class(component: str) -> type[CommonSettings] | None:
    """The settings class a component's process reads, or None while the
    component's package (being written in parallel) has none yet."""
    module_name = f"fabula_{component}.settings"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            return None
        raise
    base = CommonSettings if component == "gateway" else ServiceSettings
    candidates = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and issubclass(obj, base) and obj.__module__ == module.__name__
    ]
    assert len(candidates) == 1, f"{module_name}: expected one settings class, found {candidates}"
    return candidates[0]


def require_settings(component: str) -> type[CommonSettings]:
    cls = settings_class(component)
    if cls is None:
        pytest.skip(f"fabula_{component}.settings does not exist yet")
    return cls


def env_names(cls: type[CommonSettings]) -> set[str]:
    """Every environment variable the settings class reads (upper case)."""
    prefix = (cls.model_config.get("env_prefix") or "").upper()
    names = set()
    for field_name, field in cls.model_fields.items():
        alias = field.validation_alias
        if isinstance(alias, str):
            names.add(alias.upper())
        elif alias is not None and hasattr(alias, "choices"):
            names.update(c.upper() for c in alias.choices if isinstance(c, str))
        else:
            names.add(f"{prefix}{field_name}".upper())
    return names


@contextmanager
def only_environment(env: Mapping[str, str]) -> Iterator[None]:
    """Run with exactly `env` as the process environment, as in a container."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_settings(component: str, env: Mapping[str, str]) -> CommonSettings:
    cls = require_settings(component)
    with only_environment(env):
        return cls()


def host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host, int(port)


LOOPBACK = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}


def default_port(component: str) -> int:
    """The port the component listens on by default, per the architecture."""
    return GATEWAY_PORT if component == "gateway" else SERVICE_PORTS[component]


# --- Dockerfiles ---------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction]

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages of a Dockerfile, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)

    stages: list[Stage] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        keyword, args = keyword.upper(), args.strip()
        if keyword == "FROM":
            words = [w for w in args.split() if not w.startswith("--")]
            name = words[2] if len(words) >= 3 and words[1].upper() == "AS" else None
            stages.append(Stage(image=words[0], name=name, instructions=[]))
        elif keyword == "ARG" and not stages:
            continue
        else:
            assert stages, f"instruction before FROM: {line}"
            stages[-1].instructions.append(Instruction(keyword, args))
    return stages


_ARG_REFERENCE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def global_args(text: str) -> dict[str, str | None]:
    """ARGs declared before the first FROM (usable in FROM lines), with defaults."""
    found: dict[str, str | None] = {}
    for line in text.splitlines():
        line = line.strip()
        if line.upper().startswith("FROM "):
            break
        if line.upper().startswith("ARG "):
            name, sep, default = line[4:].strip().partition("=")
            found[name] = default if sep else None
    return found


def substitute_args(text: str, values: Mapping[str, str]) -> str:
    """${NAME} and $NAME replaced by the build argument's value ('' if unset)."""
    return _ARG_REFERENCE.sub(lambda m: values.get(m.group(1) or m.group(2), ""), text)


def stage_args(stage: Stage, build_args: Mapping[str, str]) -> dict[str, str]:
    """The build arguments a stage can read: only those it declares with ARG
    (a global ARG is not visible inside a stage unless declared again)."""
    declared = {i.args.split("=", 1)[0] for i in stage.all("ARG")}
    return {k: v for k, v in build_args.items() if k in declared}


def image_stages(text: str, build_args: Mapping[str, str]) -> list[Stage]:
    """The stages the image is built through, base first: the last stage, the
    stage its FROM names (after substituting the global ARGs), and so on."""
    stages = parse_dockerfile(text)
    defaults = {k: v for k, v in global_args(text).items() if v is not None}
    values = {**defaults, **build_args}
    by_name = {s.name: s for s in stages if s.name}
    chain = [stages[-1]]
    while True:
        parent = substitute_args(chain[-1].image, values)
        if parent not in by_name:
            break
        assert by_name[parent] not in chain, f"stage {parent} builds on itself"
        chain.append(by_name[parent])
    return chain[::-1]


def image_view(text: str, build_args: Mapping[str, str]) -> Stage:
    """The image as one stage: the base image of its first stage and every
    instruction of the chain in order (later ENV, USER, CMD... win)."""
    chain = image_stages(text, build_args)
    instructions = [i for stage in chain for i in stage.instructions]
    return Stage(image=chain[0].image, name=chain[-1].name, instructions=instructions)


def env_assignments(stage: Stage) -> dict[str, str]:
    """KEY=value pairs of a stage's ENV instructions."""
    import shlex

    values: dict[str, str] = {}
    for instruction in stage.all("ENV"):
        for word in shlex.split(instruction.args):
            key, sep, value = word.partition("=")
            assert sep, f"use the ENV KEY=value form: {instruction.args}"
            values[key] = value
    return values


# --- .dockerignore ------------------------------------------------------------


def _dockerignore_regex(pattern: str):
    """Docker's pattern syntax (Go filepath.Match plus `**`) as a regex."""
    import re

    out, i = "", 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif c == "*":
            out, i = out + "[^/]*", i + 1
        elif c == "?":
            out, i = out + "[^/]", i + 1
        elif c == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1].replace("[!", "[^"), end + 1
        else:
            out, i = out + re.escape(c), i + 1
    return re.compile(out + r"\Z")


def dockerignore_matcher(text: str):
    """A function telling whether a path (relative to the context) is left out
    of the build context: the last matching pattern wins, `!` re-includes,
    and a pattern matching a directory leaves out everything below it."""
    import posixpath

    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        include = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((include, _dockerignore_regex(pattern)))

    def ignored(path: str) -> bool:
        parts = path.strip("/").split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for include, regex in rules:
            if any(regex.match(c) for c in candidates):
                result = not include
        return result

    return ignored


# --- docker compose -------------------------------------------------------------

COMPOSE_FILE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"

_VARIABLE = re.compile(
    r"\$\$|\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\}|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*)"
)


class MissingVariable(Exception):
    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{name}: {message}")
        self.name = name


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=value lines of a .env file; commented-out lines are not set."""
    values = {}
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f"{path.name}: not KEY=value: {raw!r}"
            values[key.strip()] = value.strip()
    return values


def compose_variables(text: str) -> dict[str, set[str]]:
    """Variables the compose file interpolates, by operator ('' for plain)."""
    found: dict[str, set[str]] = {}
    for match in _VARIABLE.finditer(text):
        name = match.group("name") or match.group("bare")
        if name:
            found.setdefault(name, set()).add(match.group("op") or "")
    return found


def interpolate(value, env: Mapping[str, str]):
    """Compose's ${VAR}, ${VAR:-default}, ${VAR-default}, ${VAR:?err}, ${VAR?err}."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group("name") or match.group("bare")
        op, arg = match.group("op"), match.group("arg") or ""
        current = env.get(name)
        unset_or_empty = not current
        if op == ":-":
            return arg if unset_or_empty else current
        if op == "-":
            return arg if current is None else current
        if op == ":?" and unset_or_empty or op == "?" and current is None:
            raise MissingVariable(name, arg)
        return current or ""

    return _VARIABLE.sub(substitute, value)


def load_compose(env: Mapping[str, str]) -> dict:
    """docker-compose.yml as compose would see it with `env` as .env: YAML
    anchors merged, variables interpolated, environment values that name no
    value passed through from `env` (or dropped)."""
    import yaml

    config = interpolate(yaml.safe_load(COMPOSE_FILE.read_text()), env)
    for service in config["services"].values():
        environment = service.get("environment") or {}
        assert isinstance(environment, dict), "use the mapping form of environment"
        resolved = {}
        for key, value in environment.items():
            if value is None:
                if key in env:
                    resolved[key] = env[key]
            else:
                resolved[key] = str(value)
        service["environment"] = resolved
    return config


def example_env_with_secrets() -> dict[str, str]:
    """.env.example with every required (empty) secret filled in."""
    env = read_env_file(ENV_EXAMPLE)
    return {k: v or f"test-{k.lower().replace('_', '-')}" for k, v in env.items()}


# --- Kubernetes -----------------------------------------------------------------

DEPLOY = REPO / "deploy"
OVERLAYS = ("dev", "prod")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "ReplicaSet"}


def find_tool(name: str) -> str | None:
    """A command on PATH, or installed into this venv by a dev dependency."""
    import shutil
    import sys

    return shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))


def kubectl() -> str:
    path = find_tool("kubectl")
    if path is None:
        pytest.skip("kubectl is not installed: the deployment manifests cannot be rendered")
    return path


def render(path: Path) -> list[dict]:
    """`kubectl kustomize <path>`, as a list of documents."""
    import subprocess

    import yaml

    result = subprocess.run(
        [kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def pod_template(workload: dict) -> dict:
    if workload["kind"] == "CronJob":
        return workload["spec"]["jobTemplate"]["spec"]["template"]
    return workload["spec"]["template"]


def workloads(docs: list[dict]) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] in WORKLOAD_KINDS | {"CronJob"}}


def containers(pod_spec: dict) -> list[dict]:
    return [*pod_spec.get("initContainers", []), *pod_spec["containers"]]


def container_environment(
    docs: list[dict], container: dict, secret_values: Mapping[str, Mapping[str, str]]
) -> dict[str, str]:
    """What a container's process sees: envFrom ConfigMaps, then env entries
    (values, ConfigMap and Secret keys; Secrets from `secret_values`, by name
    and key). Optional references that resolve to nothing are left out."""
    import base64

    config_maps = by_kind(docs, "ConfigMap")
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        assert "configMapRef" in source, "secrets are referenced key by key, never in bulk"
        env.update(config_maps[source["configMapRef"]["name"]]["data"])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = str(entry["value"])
            continue
        ref = entry["valueFrom"]
        if "secretKeyRef" in ref:
            name, key = ref["secretKeyRef"]["name"], ref["secretKeyRef"]["key"]
            secret = by_kind(docs, "Secret").get(name)
            if secret is not None:
                env[entry["name"]] = base64.b64decode(secret["data"][key]).decode()
            elif (name, key) in secret_values:
                env[entry["name"]] = secret_values[(name, key)]
            else:
                assert ref["secretKeyRef"].get("optional"), f"no value for Secret {name}/{key}"
        elif "configMapKeyRef" in ref:
            cm = config_maps[ref["configMapKeyRef"]["name"]]
            env[entry["name"]] = cm["data"][ref["configMapKeyRef"]["key"]]
        else:
            raise AssertionError(f"unsupported env source {ref}")
    return env


# --- NetworkPolicy evaluation -----------------------------------------------------
#
# Endpoints are the rendered workloads' pods (by their app.kubernetes.io/name)
# plus three outside parties: "external" (any address outside the cluster),
# "monitoring" (a Prometheus pod in the namespace `monitoring`) and "kube-dns".
# A connection src -> dst:port is allowed when src may send it (its egress) and
# dst may receive it (its ingress); a pod no policy isolates allows everything
# in that direction, as do the outside parties (no policy of ours governs them).


@dataclass(frozen=True)
class Endpoint:
    name: str
    namespace: str | None  # None: outside the cluster
    labels: tuple[tuple[str, str], ...]
    ports: tuple[tuple[str, int, str], ...] = ()  # (port name, number, protocol)
    ours: bool = False

    def label_dict(self) -> dict[str, str]:
        return dict(self.labels)


def _selects(selector: dict | None, labels: Mapping[str, str]) -> bool:
    if selector is None:
        return True
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values", [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def _peer_matches(peer: dict, policy_namespace: str, other: Endpoint) -> bool:
    if "ipBlock" in peer:
        return other.namespace is None
    if other.namespace is None:
        return False
    if "namespaceSelector" in peer:
        namespace_labels = {"kubernetes.io/metadata.name": other.namespace}
        if not _selects(peer["namespaceSelector"], namespace_labels):
            return False
    elif other.namespace != policy_namespace:
        return False
    return _selects(peer.get("podSelector"), other.label_dict())


def _port_matches(
    rule_ports: list[dict] | None, port: int, protocol: str, destination: Endpoint
) -> bool:
    if not rule_ports:
        return True
    for rule in rule_ports:
        if rule.get("protocol", "TCP") != protocol:
            continue
        wanted = rule.get("port")
        if wanted is None:
            return True
        if isinstance(wanted, str):
            if any(
                n == wanted and p == port and proto == protocol for n, p, proto in destination.ports
            ):
                return True
        elif wanted <= port <= rule.get("endPort", wanted):
            return True
    return False


def _allowed(
    policies: list[dict],
    direction: str,
    subject: Endpoint,
    other: Endpoint,
    port: int,
    protocol: str,
    destination: Endpoint,
) -> bool:
    if not subject.ours:
        return True
    kind = "Ingress" if direction == "ingress" else "Egress"
    peers_key = "from" if direction == "ingress" else "to"
    selecting = [
        p
        for p in policies
        if kind in p["spec"].get("policyTypes", ["Ingress"])
        and p["metadata"].get("namespace") == subject.namespace
        and _selects(p["spec"]["podSelector"], subject.label_dict())
    ]
    if not selecting:
        return True
    for policy in selecting:
        for rule in policy["spec"].get(direction, []) or []:
            peers = rule.get(peers_key)
            if peers and not any(_peer_matches(peer, subject.namespace, other) for peer in peers):
                continue
            if _port_matches(rule.get("ports"), port, protocol, destination):
                return True
    return False


def allowed_edges(docs: list[dict]) -> set[tuple[str, str, int, str]]:
    """Every (source, destination, port, protocol) the NetworkPolicies allow,
    over the ports anything listens on or any policy names."""
    namespace = next(
        (d["metadata"].get("namespace") for d in docs if d["kind"] in WORKLOAD_KINDS), None
    )
    pods = []
    for workload in workloads(docs).values():
        template = pod_template(workload)
        labels = template["metadata"]["labels"]
        ports = tuple(
            (p.get("name", ""), p["containerPort"], p.get("protocol", "TCP"))
            for c in template["spec"]["containers"]
            for p in c.get("ports", [])
        )
        pods.append(
            Endpoint(
                labels["app.kubernetes.io/name"],
                namespace,
                tuple(sorted(labels.items())),
                ports,
                ours=True,
            )
        )
    outside = [
        Endpoint("external", None, ()),
        Endpoint("monitoring", "monitoring", (("app.kubernetes.io/name", "prometheus"),)),
        Endpoint(
            "kube-dns",
            "kube-system",
            (("k8s-app", "kube-dns"),),
            (("dns", 53, "UDP"), ("dns-tcp", 53, "TCP")),
        ),
    ]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    candidate_ports = {(p, proto) for e in pods + outside for _, p, proto in e.ports}
    for policy in policies:
        for direction in ("ingress", "egress"):
            for rule in policy["spec"].get(direction, []) or []:
                for port in rule.get("ports") or []:
                    if isinstance(port.get("port"), int):
                        candidate_ports.add((port["port"], port.get("protocol", "TCP")))

    edges = set()
    for source in pods + outside:
        for destination in pods + outside:
            if (
                source == destination
                or not (source.ours or destination.ours)
                or source.name == "kube-dns"
            ):
                continue
            for port, protocol in candidate_ports:
                if destination.ours and not any(
                    p == port and proto == protocol for _, p, proto in destination.ports
                ):
                    continue  # nothing listens there
                if _allowed(
                    policies, "egress", source, destination, port, protocol, destination
                ) and _allowed(
                    policies, "ingress", destination, source, port, protocol, destination
                ):
                    edges.add((source.name, destination.name, port, protocol))
    return edges
