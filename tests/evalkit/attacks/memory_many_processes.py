"""Attack: beat per-process memory limits with 6 processes x 200 MiB, held for 3 s."""

import ctypes
import os
import time

children = []
for _ in range(6):
    pid = os.fork()
    if pid == 0:
        ctypes.CDLL(None).prctl(15, b"__TOKEN__", 0, 0, 0)
        try:
            block = bytearray(b"\x01") * (200 << 20)  # filled, so the pages are really used
            time.sleep(3)
            os._exit(0)
        except MemoryError:
            os._exit(1)
    children.append(pid)
ATTACK_SUCCEEDED = all(os.waitpid(pid, 0)[1] == 0 for pid in children)
