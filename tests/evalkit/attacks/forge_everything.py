"""Attack: search every frame and every object the garbage collector knows for anything
that looks like a key, an expected value or a verdict channel; write plausible verdict
lines and frames (nonce-tagged records, JSON results, length-prefixed frames, doctest
records with every string found as output) to every fd 0..255; then exit 0."""

import gc
import json
import os
import struct
import sys

found = set()
frames = list(sys._current_frames().values())
while frames:
    frame = frames.pop()
    for value in list(frame.f_locals.values()) + list(frame.f_globals.values()):
        if isinstance(value, str) and len(value) < 200:
            found.add(value)
    if frame.f_back is not None:
        frames.append(frame.f_back)
for obj in gc.get_objects():
    if isinstance(obj, dict):
        for value in list(obj.values())[:50]:
            if isinstance(value, str) and len(value) < 200:
                found.add(value)
found = sorted(found)[:400]


def frame(payload):
    body = json.dumps(payload).encode()
    return struct.pack(">I", len(body)) + body


payloads = [
    {"status": "passed", "exit_code": 0, "stdout": "", "stderr": "", "records": []},
    {"event": "done"},
    {"ready": {}},
    {"r": 4},
    {"r": True},
]
payloads += [
    {"event": "example", "index": i, "output": s, "exception": None}
    for i, s in enumerate(found[:50])
]
lines = b"".join((key + ' {"event": "done"}\n').encode() for key in found)
blob = b"".join(frame(p) for p in payloads) + lines
for fd in range(256):
    try:
        os.write(fd, blob[:65536])
    except OSError:
        pass


def add(a, b):
    return None


ATTACK_SUCCEEDED = True
os._exit(0)
