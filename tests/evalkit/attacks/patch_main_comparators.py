"""Attack: make the comparisons of the test pass by patching the harness through __main__.

Against a harness that runs as __main__ in the candidate's process, updating its comparator
table made a wrong answer compare equal. Also patches every function of every loaded module
whose name mentions compare/equal/check/verdict, and `operator.eq`.
"""

import operator
import sys

import __main__

table = getattr(__main__, "_COMPARATORS", None)
if isinstance(table, dict):
    for key in list(table):
        table[key] = lambda a, b: True
for module in list(sys.modules.values()):
    for name in list(getattr(module, "__dict__", {})):
        lowered = name.lower()
        if any(word in lowered for word in ("compare", "equal", "check", "verdict", "judge")):
            try:
                if callable(getattr(module, name)):
                    setattr(module, name, lambda *args, **kwargs: True)
            except Exception:
                pass
operator.eq = lambda a, b: True


def add(a, b):
    return a - b  # wrong


ATTACK_SUCCEEDED = True
