"""Where `fabula login` keeps the tokens: credentials.json in the user's
config folder (platformdirs: ~/.config/fabula on Linux, ~/Library/Application
Support/fabula on macOS, %APPDATA%\\fabula on Windows; FABULA_CONFIG_DIR
overrides), one entry per API URL, readable by the user alone (0600, folder
0700). Tokens refreshed by the client are written back at once, so the next
command starts from the newest pair (the server rotates refresh tokens)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import platformdirs
from fabula_client import Tokens

FILE_NAME = "credentials.json"


def config_dir() -> Path:
    override = os.environ.get("FABULA_CONFIG_DIR")
    return Path(override) if override else Path(platformdirs.user_config_dir("fabula", appauthor=False))


class CredentialStore:
    def __init__(self, folder: Path | None = None) -> None:
        self.folder = folder or config_dir()
        self.path = self.folder / FILE_NAME

    def _read(self) -> dict[str, Any]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}
        except ValueError:
            return {}  # a damaged file: as if logged out (the next login rewrites it)

    def _write(self, entries: dict[str, Any]) -> None:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Written whole to a private temporary file, then renamed over the old
        # one: never a moment where the tokens are readable by others or half written.
        handle, temporary = tempfile.mkstemp(dir=self.folder, prefix=".credentials-")
        try:
            with os.fdopen(handle, "w") as out:
                os.fchmod(out.fileno(), 0o600)
                json.dump(entries, out, indent=2)
            os.replace(temporary, self.path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def tokens(self, api_url: str) -> Tokens | None:
        entry = self._read().get(api_url)
        return Tokens.model_validate(entry) if entry else None

    def save(self, api_url: str, tokens: Tokens) -> None:
        entries = self._read()
        entries[api_url] = tokens.model_dump(mode="json")
        self._write(entries)

    def forget(self, api_url: str) -> bool:
        entries = self._read()
        if entries.pop(api_url, None) is None:
            return False
        self._write(entries)
        return True
