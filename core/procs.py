"""Process helpers shared by the broker's crash recovery and the daemon runner."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True if a process with this PID exists (also when it belongs to another user)."""
    if pid <= 0:                     # 0 and negatives name process groups, not a process
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
