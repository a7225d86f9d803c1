"""A free TCP port on 127.0.0.1 for tests that start servers."""

import socket


def free_port() -> int:
    """A port nothing listens on now (the OS picks it; a server started next binds it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
