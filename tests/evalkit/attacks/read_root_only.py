"""Attack: read a file that only root may read, and print it."""

try:
    with open("__ROOT_FILE__") as secret:
        print(secret.read())
    ATTACK_SUCCEEDED = True
except OSError:
    ATTACK_SUCCEEDED = False
