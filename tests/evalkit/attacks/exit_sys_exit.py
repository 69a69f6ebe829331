"""Attack: claim success with sys.exit(0) before the checks run."""

import sys


def add(a, b):
    return a - b


ATTACK_SUCCEEDED = True
sys.exit(0)
