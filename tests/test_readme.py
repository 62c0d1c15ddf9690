"""The README as a reader uses it: its shell walkthroughs can be pasted in
order (every variable they use is set before, and no code block is left
open). Its configuration table: tests/deploy/test_configuration_table.py."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"

# Set by the reader's shell, not by the README.
SHELL_VARIABLES = {"HOME", "PATH", "PWD", "RANDOM", "USER"}


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
        assigned |= set(
            re.findall(r"(?:^|[;&(]\s*)(?:export\s+)?([A-Z_][A-Z0-9_]*)=", code, re.MULTILINE)
        )
        missing = used - assigned - SHELL_VARIABLES
        if missing:
            unset.append((line_number, sorted(missing)))
    assert not unset, f"README lines using a variable no earlier example sets: {unset}"
