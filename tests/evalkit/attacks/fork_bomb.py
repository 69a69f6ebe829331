"""Attack: fork as many processes as possible (at most 400, each alive at most 20 s)."""

import ctypes
import os
import time

created = 0
try:
    for _ in range(400):
        pid = os.fork()
        if pid == 0:
            ctypes.CDLL(None).prctl(15, b"__TOKEN__", 0, 0, 0)  # PR_SET_NAME: findable
            time.sleep(20)
            os._exit(0)
        created += 1
except OSError:
    pass
ATTACK_SUCCEEDED = created >= 400
