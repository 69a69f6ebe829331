"""Attack: return an object that claims to equal (and contain) anything."""


class Anything:
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    def __contains__(self, item):
        return True

    __hash__ = object.__hash__


def add(a, b):
    return Anything()


ATTACK_SUCCEEDED = add(2, 2) == 4
