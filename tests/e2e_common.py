"""What the end-to-end test scripts share: a failure that ends a scenario with a message,
the check that raises it, and free ports."""

import socket


class Failure(Exception):
    """A scenario failed; the message says what was expected and what happened."""


def check(condition, message):
    if not condition:
        raise Failure(message)


def free_ports(count):
    """Ports nothing listens on right now (bound and released)."""
    sockets, ports = [], []
    for _ in range(count):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
        ports.append(s.getsockname()[1])
    for s in sockets:
        s.close()
    return ports
