"""Attack: overwrite one file and delete another outside the sandbox (both world-writable)."""

import os

wrote = deleted = False
try:
    with open("__HOST_FILE__", "w") as target:
        target.write("overwritten from the sandbox")
    wrote = True
except OSError:
    pass
try:
    os.remove("__HOST_VICTIM__")
    deleted = True
except OSError:
    pass
ATTACK_SUCCEEDED = wrote or deleted
