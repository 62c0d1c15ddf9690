"""Process entry points, run as a process would run them."""

from __future__ import annotations

import subprocess
import sys

_SERVE = """
import gc
from fabula_common.grpc_server import serve
from fabula_common.settings import CommonSettings

class App:
    async def run(self):
        print(gc.get_freeze_count(), flush=True)

serve("entry-test", CommonSettings, lambda settings: App())
"""


def test_a_service_serves_with_its_start_up_objects_out_of_the_collectors_reach():
    """What start-up built lives as long as the process: frozen, a full
    garbage collection under load no longer walks it again."""
    out = subprocess.run(
        [sys.executable, "-c", _SERVE], capture_output=True, text=True, timeout=60, check=True
    )
    assert int(out.stdout.split()[-1]) > 10_000
