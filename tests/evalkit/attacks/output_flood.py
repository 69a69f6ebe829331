"""Attack: write 1 GiB to stdout (1 MiB at a time, then stop)."""

import os

chunk = b"A" * (1 << 20)
for _ in range(1024):
    os.write(1, chunk)
ATTACK_SUCCEEDED = True
