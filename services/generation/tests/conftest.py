"""Fixtures of the generation tests: the fake Mistral server."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FAKE_MISTRAL_PATH = Path(__file__).resolve().parents[3] / "tests" / "fakes" / "fake_mistral.py"


def _load_fake_mistral():
    # tests/ is not a package (and pytest runs with --import-mode=importlib).
    name = "fake_mistral"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FAKE_MISTRAL_PATH)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fake_mistral_module = _load_fake_mistral()


@pytest.fixture
async def fake_mistral():
    """A fake Mistral API on a free port, slow behaviours kept short."""
    async with fake_mistral_module.FakeMistral(slow_seconds=5.0) as fake:
        yield fake
