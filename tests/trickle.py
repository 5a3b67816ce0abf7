"""A slowloris client for deadline tests: trickle bytes and measure when the server closes.

The pacing is the wait on the socket (``recv`` with a timeout), so the test never sleeps blindly,
and the loop is bounded in both time and count.
"""

from __future__ import annotations

import socket
import time


def closes_within(sock: socket.socket, payload: bytes, every: float, bound: float) -> float | None:
    """Send `payload` one byte per `every` seconds; seconds until the server closed, None if it
    was still open after `bound` seconds (or the payload ran out)."""
    start = time.monotonic()
    sent = 0
    for _ in range(int(bound / every) + 1000):
        left = bound - (time.monotonic() - start)
        if left <= 0:
            return None
        sock.settimeout(min(every, left))
        try:
            if not sock.recv(65536):
                return time.monotonic() - start
            continue                  # some reply (the timeout notice): keep reading until EOF
        except socket.timeout:
            pass
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        if sent >= len(payload):
            return None
        try:
            sock.send(payload[sent:sent + 1])
        except (ConnectionResetError, BrokenPipeError):
            return time.monotonic() - start
        sent += 1
    return None
