"""The committed stubs are exactly what `make proto` generates from protos/."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
    stale = sorted(str(p) for p in fresh.keys() | committed.keys() if fresh.get(p) != committed.get(p))
    assert not stale, f"stubs are stale, run `make proto`: {stale}"


def test_every_event_payload_has_an_event_id():
    from fabula.generation.v1 import events_pb2 as generation_events
    from fabula.users.v1 import events_pb2 as users_events

    for module in (generation_events, users_events):
        for message in module.DESCRIPTOR.message_types_by_name.values():
            assert "event_id" in message.fields_by_name, message.full_name
