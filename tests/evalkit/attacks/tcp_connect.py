"""Attack: connect to a TCP listener on the host's loopback (one try, 2 s timeout)."""

import socket

try:
    with socket.create_connection(("127.0.0.1", int("__PORT__")), timeout=2) as connection:
        connection.sendall(b"hello from the sandbox")
    ATTACK_SUCCEEDED = True
except OSError:
    ATTACK_SUCCEEDED = False
