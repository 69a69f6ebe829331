"""Attack: stop (SIGSTOP) the process supervising us so nobody enforces our limits (30 s max)."""

import ctypes
import os
import signal
import time

ctypes.CDLL(None).prctl(15, b"__TOKEN__", 0, 0, 0)
parent = os.getppid()
try:
    os.kill(parent, signal.SIGSTOP)
except OSError:
    pass
time.sleep(0.3)
try:
    with open(f"/proc/{parent}/stat") as stat:
        frozen = stat.read().rsplit(")", 1)[1].split()[0] == "T"
except OSError:
    frozen = False
if frozen:
    time.sleep(30)  # the supervisor is frozen: nobody should stop us now
ATTACK_SUCCEEDED = frozen
