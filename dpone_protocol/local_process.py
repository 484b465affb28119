"""Whether a process of this machine is still running: how a lock or a half-made file left by a
killed run is told from one whose owner is still at work."""

from __future__ import annotations

import os


def process_exists(pid: int) -> bool:
    """True while process `pid` runs here, someone else's included."""
    if pid <= 0:
        return False  # 0 and negative ids name process groups, not a process
    try:
        os.kill(pid, 0)  # signal 0: the check without the signal
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists; it is only not ours
    return True
