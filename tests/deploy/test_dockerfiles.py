"""The images: one parameterised Dockerfile (build argument SERVICE) for every
service and the gateway, multi-stage, pinned, non-root, nothing to build
software with in the final image; and the builder step itself, replayed
without Docker to prove the venv it makes can run the service and its
migrations."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from deploy_support import (
    COMPONENTS,
    DOCKERFILE,
    METRICS_PORT,
    REPO,
    Component,
    default_port,
    dockerignore_matcher,
    env_assignments,
    find_tool,
    global_args,
    image_stages,
    image_view,
    parse_dockerfile,
    settings_class,
    stage_args,
    substitute_args,
)

# An exact version in the tag (3.11.13-slim-bookworm, 0.13.9), or a digest.
PINNED = re.compile(
    r"^[^@:]+(:[^@]*\d+\.\d+\.\d+[^@]*)(@sha256:[0-9a-f]{64})?$|^[^@]+@sha256:[0-9a-f]{64}$"
)
BUILD_TOOLS = re.compile(
    r"apt-get install|apt install|apk add|pip install|uv (pip|sync|add)"
    r"|\bgcc\b|build-essential|\bmake\b"
)

by_name = pytest.mark.parametrize("component", COMPONENTS, ids=lambda c: c.name)


def dockerfile_text() -> str:
    assert DOCKERFILE.is_file(), "the Dockerfile at the repository root is missing"
    return DOCKERFILE.read_text()


def chain_of(component: Component):
    return image_stages(dockerfile_text(), component.build_args)


def image_of(component: Component):
    return image_view(dockerfile_text(), component.build_args)


def builder_of(component: Component):
    return next(s for s in parse_dockerfile(dockerfile_text()) if s.name == "builder")


def test_one_dockerfile_builds_every_image():
    """No near-copies: the root Dockerfile is the only one, SERVICE has no
    default (a build that forgets it fails instead of building some other
    component) and each component ends in a stage of its own."""
    dockerfiles = [
        p.relative_to(REPO).as_posix()
        for p in REPO.rglob("Dockerfile*")
        if not {".venv", ".git", "node_modules"} & set(p.parts)
    ]
    assert dockerfiles == ["Dockerfile"]
    assert global_args(dockerfile_text()) == {"SERVICE": None}
    # The last stage is `FROM ${SERVICE}`: the stage named after the component.
    assert parse_dockerfile(dockerfile_text())[-1].image == "${SERVICE}"
    built_from = {component.name: chain_of(component)[-2].name for component in COMPONENTS}
    assert built_from == {component.name: component.name for component in COMPONENTS}


@by_name
def test_images_are_multi_stage_from_pinned_bases(component):
    stages = parse_dockerfile(dockerfile_text())
    chain = chain_of(component)
    assert len(chain) >= 2 and component.name in {stage.name for stage in chain}
    stage_names = {s.name for s in stages if s.name}
    images = [chain[0].image, builder_of(component).image]
    for stage in [*chain, builder_of(component)]:
        for copy in stage.all("COPY"):
            source = re.search(r"--from=(\S+)", copy.args)
            if source and source.group(1) not in stage_names:
                images.append(source.group(1))
    for image in images:
        assert PINNED.match(image), f"{image}: pin an exact version tag (never latest or untagged)"
    # The venv's interpreter link must exist in the runtime image as well.
    assert chain[0].image == builder_of(component).image


@by_name
def test_the_builder_installs_the_component_from_the_lock_file(component):
    builder = builder_of(component)
    args = stage_args(builder, component.build_args)
    assert args == component.build_args, "the builder stage must declare ARG SERVICE to see it"
    sync = " ".join(
        substitute_args(r.args, args) for r in builder.all("RUN") if "uv sync" in r.args
    )
    package = component.package.replace("_", "-")
    for flag in ("--locked", "--no-dev", "--no-editable", f"--package {package}"):
        assert flag in sync, f"builder: uv sync needs {flag}"
    assert env_assignments(builder).get("UV_COMPILE_BYTECODE") == "1", (
        "bytecode is compiled at build time: the root filesystem is read-only at run time"
    )


@by_name
def test_the_final_image_runs_unprivileged_without_build_tools(component):
    image = image_of(component)
    users = image.all("USER")
    assert users, "the final image must switch to a non-root USER"
    uid = users[-1].args.split(":")[0]
    assert uid.isdigit() and int(uid) >= 1000, (
        f"USER {users[-1].args}: use a numeric non-root uid so Kubernetes can verify runAsNonRoot"
    )
    for run in image.all("RUN"):
        assert not BUILD_TOOLS.search(run.args), f"build tooling in the final image: {run.args}"
    for copy in image.all("COPY") + image.all("ADD"):
        assert "--from=builder" in copy.args, (
            f"the final image takes only the built venv: {copy.args}"
        )
        assert "/uv" not in copy.args.split()


@by_name
def test_the_final_image_starts_the_component_on_all_interfaces(component):
    image = image_of(component)
    env = env_assignments(image)
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env["PATH"].startswith("/app/.venv/bin:")
    port = default_port(component.name)
    prefix = "GATEWAY" if component.is_gateway else component.name.upper() + "_GRPC"
    assert env.get(f"{prefix}_HOST") == "0.0.0.0", (
        "the default 127.0.0.1 is unreachable from outside"
    )
    exposed = {int(p.split("/")[0]) for e in image.all("EXPOSE") for p in e.args.split()}
    assert exposed == {port, METRICS_PORT}
    metrics = "GATEWAY" if component.is_gateway else component.name.upper()
    assert int(env[f"{metrics}_METRICS_PORT"]) == METRICS_PORT
    if component.is_gateway:
        assert env.get("GATEWAY_METRICS_HOST") == "0.0.0.0"
    # Another component's settings in this image would be a copy-paste slip.
    others = {c.name.upper() for c in COMPONENTS} - {component.name.upper()}
    assert not [k for k in env if k.split("_")[0] in others], env
    cmd = image.all("CMD")[-1].args
    assert cmd == f'["python", "-m", "{component.package}"]'
    healthcheck = image.all("HEALTHCHECK")
    assert healthcheck, "the image says how to check its health"
    assert ("/healthz" if component.is_gateway else "grpc_health") in healthcheck[-1].args


@by_name
def test_the_image_port_is_the_components_default(component):
    cls = settings_class(component.name)
    if cls is None:
        pytest.skip(f"{component.package}.settings does not exist yet")
    field = "port" if component.is_gateway else "grpc_port"
    assert cls.model_fields[field].default == default_port(component.name)


def test_the_build_context_leaves_out_secrets_and_keeps_the_workspace():
    ignored = dockerignore_matcher((REPO / ".dockerignore").read_text())
    for path in [
        ".env",
        ".env.production",
        ".git/config",
        ".venv/bin/python",
        "services/users/.venv/x",
        "libs/common/fabula_common/__pycache__/db.cpython-311.pyc",
    ]:
        assert ignored(path), f"{path} must not reach the build context"
    needed = ["uv.lock", "pyproject.toml"]
    for pyproject in sorted(REPO.glob("*/*/pyproject.toml")) + sorted(
        REPO.glob("*/pyproject.toml")
    ):
        package_dir = pyproject.parent
        needed.append(str(pyproject.relative_to(REPO)))
        needed.extend(
            str(p.relative_to(REPO))
            for p in package_dir.glob("fabula*/**/*")
            if "__pycache__" not in p.parts
        )
    kept_out = [p for p in needed if ignored(p)]
    assert not kept_out, f"uv sync needs these in the build context: {kept_out[:10]}"


def _uv() -> str | None:
    # `uv run` exports its own path as UV.
    return os.environ.get("UV") or find_tool("uv")


def _build_context(tmp_path: Path) -> Path:
    """The files `docker build .` would send, per .dockerignore."""
    ignored = dockerignore_matcher((REPO / ".dockerignore").read_text())
    context = tmp_path / "context"
    for directory, subdirs, files in os.walk(REPO):
        relative_dir = Path(directory).relative_to(REPO)
        # Nothing below an ignored directory is sent (no `!` exceptions in use).
        subdirs[:] = [d for d in subdirs if not ignored((relative_dir / d).as_posix())]
        for name in files:
            relative = (relative_dir / name).as_posix()
            if not ignored(relative):
                target = context / relative
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(REPO / relative, target)
    return context


@pytest.fixture(scope="module")
def built_context(tmp_path_factory) -> Path:
    return _build_context(tmp_path_factory.mktemp("image"))


# Run by the venv's own interpreter: where the component's modules come from,
# which migration files they carry, and which top-level imports of the
# installed Fabula packages cannot be found (an undeclared dependency that
# the development venv, holding every package, would hide). Imports are
# read, not executed, to stay fast.
_INSPECT_VENV = """
import ast, importlib.util, json, pathlib, sys

package = sys.argv[1]
main = importlib.util.find_spec(package + ".__main__")
origin = pathlib.Path(main.origin)
roots = [origin.parent] + [
    pathlib.Path(importlib.util.find_spec(n).origin).parent for n in ("fabula_common", "fabula")
]
missing = set()
for root in roots:
    for source in root.rglob("*.py"):
        for node in ast.parse(source.read_text()).body:  # module level only: not lazy or guarded
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top != "__future__" and importlib.util.find_spec(top) is None:
                    missing.add(f"{source.relative_to(root.parent)}: {top}")
migrations = origin.parent / "migrations"
print(json.dumps({
    "installed": "site-packages" in origin.parts,
    "prestart": importlib.util.find_spec("fabula_common.prestart") is not None,
    "provision": importlib.util.find_spec("fabula_common.provision") is not None,
    "migrations": sorted(str(p.relative_to(migrations)) for p in migrations.rglob("*")
                         if p.suffix in (".py", ".mako") and "__pycache__" not in p.parts),
    "missing_imports": sorted(missing),
}))
"""


@by_name
def test_the_builder_step_makes_a_venv_that_runs_the_component(component, built_context, tmp_path):
    """The builder stage's `uv sync`, replayed on the same build context: the
    venv alone (workspace packages as wheels, no source tree) holds the entry
    point, the prestart and bootstrap modules, the service's migrations and
    every module they import."""
    uv = _uv()
    if uv is None:
        pytest.skip("uv is not on PATH (nor in $UV)")
    package_dir = (
        REPO / "gateway" if component.is_gateway else REPO / "services" / component.name
    ) / component.package
    if not (package_dir / "__main__.py").exists():
        pytest.skip(f"{component.package}/__main__.py does not exist yet")
    venv = tmp_path / "venv"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("UV_", "VIRTUAL_ENV"))},
        "UV_PROJECT_ENVIRONMENT": str(venv),
        "UV_PYTHON_DOWNLOADS": "never",
    }
    sync = subprocess.run(
        [
            uv,
            "sync",
            "--locked",
            "--no-dev",
            "--no-editable",
            "--quiet",
            "--package",
            component.package.replace("_", "-"),
        ],
        cwd=built_context,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert sync.returncode == 0, sync.stderr

    inspect = subprocess.run(
        [str(venv / "bin" / "python"), "-c", _INSPECT_VENV, component.package],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1"},
    )
    assert inspect.returncode == 0, inspect.stderr
    found = json.loads(inspect.stdout)
    assert found["installed"], (
        "workspace packages must be installed as wheels, not linked to the source"
    )
    assert found["prestart"] and found["provision"]
    assert not found["missing_imports"], "imported but not a declared dependency of the image"
    source_migrations = package_dir / "migrations"
    expected = sorted(
        str(p.relative_to(source_migrations))
        for p in source_migrations.rglob("*")
        if p.suffix in (".py", ".mako") and "__pycache__" not in p.parts
    )
    assert found["migrations"] == expected, (
        "the image must carry every migration file of the source"
    )
