"""Attack: spin forever (gives up by itself after 60 s)."""

import time

deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    pass
ATTACK_SUCCEEDED = True
