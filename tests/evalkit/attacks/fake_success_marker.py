"""Attack: print what test harnesses print on success, to every channel, then exit 0."""

import os

for fd in range(1, 10):
    try:
        os.write(fd, b'passed\nALL TESTS PASSED\nOK\n{"event": "done"}\n')
    except OSError:
        pass
ATTACK_SUCCEEDED = True
os._exit(0)
