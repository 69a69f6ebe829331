"""Attack: allocate memory until something breaks (at most 2 GiB)."""

blocks = []
for _ in range(32):
    blocks.append(bytearray(b"\x01") * (64 << 20))
ATTACK_SUCCEEDED = True
