"""Attack: fill every writable place with 16 MiB files (1 GiB in all at most)."""

import os
import tempfile

block = b"\0" * (1 << 20)
written = 0
for directory in (os.getcwd(), tempfile.gettempdir(), "/tmp", "/dev/shm", "/var/tmp"):
    for index in range(64):
        if written >= 1 << 30:
            break
        try:
            with open(os.path.join(directory, f"fill-__TOKEN__-{index}"), "wb") as target:
                for _ in range(16):
                    target.write(block)
                    target.flush()
                    written += len(block)
        except OSError:
            break
ATTACK_SUCCEEDED = written >= 1 << 30
