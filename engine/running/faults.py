"""The documented test-only fault injection of the sweep worker and of build's child.

``VISIONBENCH_TEST_CRASH`` set to ``segv@N``, ``abort@N``, ``int@N`` or ``hang@N`` in the
child's environment: it crashes, dies of SIGINT or hangs once N rows (build's child: engines)
are done (N=0: right after the run is created). Only for tests' real faults.
"""

from __future__ import annotations

import os
import signal
import time

CRASH_HOOK_ENV = "VISIONBENCH_TEST_CRASH"


def fault_hook(rows_done: int) -> None:
    """The documented test-only fault injection (see the module docstring)."""
    hook = os.environ.get(CRASH_HOOK_ENV, "")
    if not hook:
        return
    kind, _, at = hook.partition("@")
    if int(at or 0) != rows_done:
        return
    if kind == "segv":
        import ctypes

        ctypes.string_at(0)
    elif kind == "abort":
        os.abort()
    elif kind == "int":  # a Ctrl-C it had no handler for: killed by SIGINT
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
    elif kind == "hang":
        while True:
            time.sleep(1)
