"""Attack: find the run's nonce in a caller's frame, write a "done" record with it to the
report fd, and exit 0 before the test can fail (this forged passes against a nonce design)."""

import os
import sys


def add(a, b):
    nonce = ""
    frame = sys._getframe(1)
    while frame is not None:
        for value in frame.f_locals.values():
            if isinstance(value, str) and len(value) == 32:
                nonce = value
        nonce = str(frame.f_locals.get("nonce", nonce))
        frame = frame.f_back
    for fd in range(3, 12):
        try:
            os.write(fd, (nonce + ' {"event": "done"}\n').encode())
        except OSError:
            pass
    os._exit(0)


ATTACK_SUCCEEDED = True
