"""The README's configuration table names every setting a component reads
from the environment, as compose and the manifests are checked to set only
those (`env_names`)."""

from __future__ import annotations

import re
from pathlib import Path

from deploy_support import COMPONENTS, env_names, require_settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _table() -> str:
    text = README.read_text()
    start = text.index("\n## Configuration\n")
    return text[start : text.index("\n## ", start + 1)]


def test_every_setting_a_component_reads_is_in_the_configuration_table():
    table = _table()
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    # A row for every service at once: `<SVC>_METRICS_PORT`.
    for_every_service = set(re.findall(r"`<SVC>_([A-Z0-9_]+)`", table))
    missing = {}
    for component in COMPONENTS:
        settings = require_settings(component.name)
        prefix = (settings.model_config.get("env_prefix") or "").upper()
        for variable in env_names(settings) - documented:
            if component.name != "gateway" and variable.removeprefix(prefix) in for_every_service:
                continue
            missing.setdefault(component.name, []).append(variable)
    assert not missing, f"settings missing from the README's configuration table: {missing}"
