"""Attack: pre-write well-formed frames (a "ready", then replies) to every fd while the
program loads, then stay alive and answer the real calls wrongly. Whatever the verifier reads
is only ever taken as this candidate's answers, in order; here they are not all right."""

import json
import os
import struct


def frame(payload):
    body = json.dumps(payload).encode()
    return struct.pack(">I", len(body)) + body


for fd in range(3, 64):
    try:
        os.write(fd, frame({"ready": {"add": {"f": 1}}}) + frame({"r": 4}) * 3 + frame({"r": [2]}))
    except OSError:
        pass


def add(a, b):
    return -1


ATTACK_SUCCEEDED = True
