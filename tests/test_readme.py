"""The README as a reader uses it: its configuration table names every
setting the services read, and its shell walkthroughs can be pasted in order
(every variable they use is set before, and no code block is left open)."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

# The settings classes of the services and the gateway.
SETTINGS = {
    "gateway": "fabula_gateway.settings:GatewaySettings",
    "users": "fabula_users.settings:Settings",
    "stories": "fabula_stories.settings:Settings",
    "generation": "fabula_generation.settings:Settings",
    "billing": "fabula_billing.settings:Settings",
    "media": "fabula_media.settings:Settings",
}

# Set by the reader's shell, not by the README.
SHELL_VARIABLES = {"HOME", "PATH", "PWD", "RANDOM", "USER"}


def _section(text: str, heading: str) -> str:
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def _environment_names(settings_class) -> set[str]:
    prefix = settings_class.model_config.get("env_prefix", "")
    names = set()
    for name, field in settings_class.model_fields.items():
        alias = field.validation_alias
        if alias is None:
            names.add(f"{prefix}{name}".upper())
        elif isinstance(alias, str):
            names.add(alias.upper())
        else:  # AliasChoices
            names.update(str(choice).upper() for choice in alias.choices)
    return names


def test_every_setting_a_service_reads_is_in_the_configuration_table():
    table = _section(README.read_text(), "Configuration")
    documented = set(re.findall(r"`([A-Z][A-Z0-9_]+)`", table))
    # A row for every service at once: `<SVC>_METRICS_PORT`.
    generic = set(re.findall(r"`<SVC>_([A-Z0-9_]+)`", table))
    missing = {}
    for service, path in SETTINGS.items():
        module, name = path.split(":")
        settings_class = getattr(importlib.import_module(module), name)
        prefix = settings_class.model_config.get("env_prefix", "")
        for variable in _environment_names(settings_class):
            if variable in documented:
                continue
            if service != "gateway" and variable.removeprefix(prefix) in generic:
                continue
            missing.setdefault(service, []).append(variable)
    assert not missing, f"settings missing from the README's configuration table: {missing}"


def _shell_blocks(text: str) -> list[tuple[int, str]]:
    return [
        (text[: match.start()].count("\n") + 1, match.group(1))
        for match in re.finditer(r"^```bash\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    ]


def test_every_code_block_is_closed():
    fences = [line for line in README.read_text().splitlines() if line.startswith("```")]
    openings = fences[0::2]
    closings = fences[1::2]
    assert len(fences) % 2 == 0, "a code block is never closed"
    # An opening names its language; a bare fence where one should open means
    # the block before it was never closed.
    assert all(fence != "```" for fence in openings), openings
    assert all(fence == "```" for fence in closings), closings


def test_the_shell_walkthroughs_use_only_variables_set_before_them():
    text = README.read_text()
    assigned: set[str] = set()
    unset = []
    for line_number, block in _shell_blocks(text):
        code = "\n".join(line for line in block.splitlines() if not line.lstrip().startswith("#"))
        used = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", code))
        assigned |= set(re.findall(r"(?:^|[;&(]\s*)(?:export\s+)?([A-Z_][A-Z0-9_]*)=", code, re.MULTILINE))
        missing = used - assigned - SHELL_VARIABLES
        if missing:
            unset.append((line_number, sorted(missing)))
    assert not unset, f"README lines using a variable no earlier example sets: {unset}"
