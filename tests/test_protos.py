"""The contracts: the committed stubs are exactly what `make proto` generates
from protos/, and protos/ does not break the contracts of the last release."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf import descriptor_pb2

ROOT = Path(__file__).resolve().parent.parent


def _load_generator():
    spec = importlib.util.spec_from_file_location("gen_protos", ROOT / "scripts" / "gen_protos.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["gen_protos"] = module
    spec.loader.exec_module(module)
    return module


def test_generated_stubs_are_current(tmp_path):
    generated = _load_generator().generate(tmp_path)
    committed_root = ROOT / "libs" / "protos" / "fabula"
    fresh = {p.relative_to(tmp_path): p.read_bytes() for p in generated}
    committed = {
        p.relative_to(committed_root.parent): p.read_bytes()
        for p in committed_root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }
    stale = sorted(
        str(p) for p in fresh.keys() | committed.keys() if fresh.get(p) != committed.get(p)
    )
    assert not stale, f"stubs are stale, run `make proto`: {stale}"


def test_every_event_payload_has_an_event_id():
    from fabula.generation.v1 import events_pb2 as generation_events
    from fabula.users.v1 import events_pb2 as users_events

    for module in (generation_events, users_events):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            assert "event_id" in message.fields_by_name, message.full_name


# --- Breaking changes ------------------------------------------------------------
# `buf breaking` (rules in protos/buf.yaml) compares protos/ with the contracts of
# the last release, protos/baseline.binpb. `make proto-baseline` records a new
# baseline, deliberately, when a release is cut; see docs/architecture.md.

PROTOS = ROOT / "protos"
BASELINE = PROTOS / "baseline.binpb"
STORIES_PROTO = Path("fabula/stories/v1/stories.proto")


def buf() -> str:
    """The buf of this venv (dev dependency buf-bin, pinned by the lock), else one on PATH."""
    path = shutil.which("buf", path=str(Path(sys.executable).parent)) or shutil.which("buf")
    if path is None:
        pytest.fail("buf is not installed (dev dependency buf-bin): run `make install`")
    return path


def run_buf(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [buf(), *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )


def breaking(protos: Path, against: Path) -> subprocess.CompletedProcess[str]:
    return run_buf("breaking", protos, "--against", against)


def test_contracts_are_compatible_with_the_released_baseline():
    result = breaking(PROTOS, BASELINE)

    assert result.returncode == 0, (
        "protos/ breaks the released contracts (protos/baseline.binpb):\n"
        f"{result.stdout}{result.stderr}\n"
        "Make the change additive (new fields and RPCs; reserve what you remove) or put it "
        "in a new version (v2). When a release is cut, `make proto-baseline` records it."
    )


def test_the_baseline_holds_released_services():
    # An empty or unreadable baseline would let every change through.
    image = descriptor_pb2.FileDescriptorSet.FromString(BASELINE.read_bytes())
    services = {f"{f.package}.{s.name}" for f in image.file for s in f.service}

    assert "fabula.stories.v1.StoriesService" in services
    assert len(services) >= 4


@pytest.fixture
def released(tmp_path) -> tuple[Path, Path]:
    """A copy of protos/ and an image of it as it is now: (copy, image)."""
    copy = tmp_path / "protos"
    shutil.copytree(PROTOS, copy, ignore=shutil.ignore_patterns(BASELINE.name))
    image = tmp_path / "released.binpb"
    built = run_buf("build", copy, "--exclude-source-info", "-o", image)
    assert built.returncode == 0, built.stderr
    return copy, image


def edit(proto: Path, old: str, new: str) -> None:
    text = proto.read_text()
    assert text.count(old) == 1, old
    proto.write_text(text.replace(old, new))


@pytest.mark.parametrize(
    ("old", "new", "reported"),
    [
        pytest.param(
            "  bool is_complete = 7;\n",
            "",
            'field "7" with name "is_complete" on message "Story" was deleted',
            id="field-removed",
        ),
        pytest.param(
            "\n  string title = 3;\n",
            "\n  string title = 30;\n",
            'field "3" with name "title" on message "Story" was deleted',
            id="field-renumbered",
        ),
        pytest.param(
            "  int32 position = 2;\n",
            "  int64 position = 2;\n",
            'Field "2" with name "position" on message "Segment" changed type',
            id="field-type-changed",
        ),
        pytest.param(
            "  string genre = 4;\n",
            "  string genre_name = 4;\n",
            'Field "4" on message "Story" changed name from "genre" to "genre_name"',
            id="field-renamed",
        ),
        pytest.param(
            "  rpc DeleteStory(DeleteStoryRequest) returns (google.protobuf.Empty);\n",
            "",
            'RPC "DeleteStory" on service "StoriesService" was deleted',
            id="rpc-removed",
        ),
        pytest.param(
            "(ContinueStoryRequest) returns (stream ContinueStoryEvent);",
            "(ContinueStoryRequest) returns (ContinueStoryEvent);",
            'RPC "ContinueStory" on service "StoriesService" changed from server streaming',
            id="stream-made-unary",
        ),
    ],
)
def test_a_breaking_change_is_reported(released, old, new, reported):
    protos, image = released
    edit(protos / STORIES_PROTO, old, new)

    result = breaking(protos, image)

    assert result.returncode != 0
    assert reported in result.stdout, result.stdout + result.stderr
    assert str(STORIES_PROTO) in result.stdout


def test_an_additive_change_passes(released):
    protos, image = released
    edit(
        protos / STORIES_PROTO,
        "  int32 segment_count = 11;\n",
        "  int32 segment_count = 11;\n  string subtitle = 90;\n",
    )
    edit(
        protos / STORIES_PROTO,
        "  SEGMENT_KIND_ENDING = 3;\n",
        "  SEGMENT_KIND_ENDING = 3;\n  SEGMENT_KIND_EPILOGUE = 4;\n",
    )
    edit(
        protos / STORIES_PROTO,
        "  rpc DeleteStory(",
        "  rpc CopyStory(GetStoryRequest) returns (Story);\n  rpc DeleteStory(",
    )
    # A field removed with its number and name reserved is not a break either.
    edit(
        protos / STORIES_PROTO,
        "  bool is_complete = 7;\n",
        '  reserved 7;\n  reserved "is_complete";\n',
    )

    result = breaking(protos, image)

    assert result.returncode == 0, result.stdout + result.stderr
