"""Attack: raise SystemExit from inside the function the checks call."""


def add(a, b):
    raise SystemExit(0)


ATTACK_SUCCEEDED = True
add(1, 2)
