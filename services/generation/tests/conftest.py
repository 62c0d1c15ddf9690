"""Fixtures of the generation tests: the fake Mistral and OpenAI-compatible servers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

FAKES = Path(__file__).resolve().parents[3] / "tests" / "fakes"
FAKE_MISTRAL_PATH = FAKES / "fake_mistral.py"


def _load_fake(name: str):
    # tests/ is not a package (and pytest runs with --import-mode=importlib).
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, FAKES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


fake_mistral_module = _load_fake("fake_mistral")
fake_openai_module = _load_fake("fake_openai")


@pytest.fixture
async def fake_mistral():
    """A fake Mistral API on a free port, slow behaviours kept short."""
    async with fake_mistral_module.FakeMistral(slow_seconds=5.0) as fake:
        yield fake


@pytest.fixture
async def fake_openai():
    """A fake OpenAI-compatible server on a free port, slow behaviours kept short."""
    async with fake_openai_module.FakeOpenAI(slow_seconds=5.0) as fake:
        yield fake


@pytest.fixture
async def fake_openai_with_key():
    """A fake OpenAI-compatible server that accepts only the key "sk-local"."""
    async with fake_openai_module.FakeOpenAI(api_key="sk-local") as fake:
        yield fake
