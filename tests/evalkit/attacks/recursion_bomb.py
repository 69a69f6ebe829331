"""Attack: recurse through C code until the interpreter's stack overflows (depth <= 10**6)."""

import sys

sys.setrecursionlimit(10**6)
nested: list = []
for _ in range(10**6):
    nested = [nested]
text = repr(nested)
ATTACK_SUCCEEDED = True
