"""Attack: claim success with os._exit(0) (no cleanup, no exception) before the checks."""

import os


def add(a, b):
    return a - b


ATTACK_SUCCEEDED = True
os._exit(0)
