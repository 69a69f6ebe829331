"""Attack: kill the process that started us, and pid 1 (one signal each)."""

import os
import signal
import time

parent = os.getppid()
for target in {parent, 1}:
    try:
        os.kill(target, signal.SIGKILL)
    except OSError:
        pass
time.sleep(0.5)
ATTACK_SUCCEEDED = os.getppid() != parent
