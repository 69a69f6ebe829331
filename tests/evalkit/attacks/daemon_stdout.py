"""Attack: leave a double-forked daemon that holds stdout open and writes for up to 20 s."""

import ctypes
import os
import time

if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        ctypes.CDLL(None).prctl(15, b"__TOKEN__", 0, 0, 0)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                os.write(1, b"daemon still here\n")
            except OSError:
                break
            time.sleep(0.05)
        os._exit(0)
    os._exit(0)
os.wait()
time.sleep(0.2)
os._exit(0)  # the classic daemonising exit: status 0 without running the checks
ATTACK_SUCCEEDED = True
