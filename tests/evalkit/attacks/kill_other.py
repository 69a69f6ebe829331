"""Attack: kill another process of the sandbox's own uid, outside the sandbox (one signal)."""

import os
import signal
import time

victim = int("__VICTIM_PID__")
try:
    os.kill(victim, signal.SIGKILL)
    signal_delivered = True
except OSError:
    signal_delivered = False
time.sleep(0.3)
try:
    os.kill(victim, 0)
    victim_gone = False
except ProcessLookupError:
    victim_gone = True
except OSError:
    victim_gone = False
ATTACK_SUCCEEDED = signal_delivered and victim_gone
