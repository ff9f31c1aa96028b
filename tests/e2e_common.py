"""What the end-to-end test scripts share: a failure that ends a scenario with a message,
and the check that raises it."""


class Failure(Exception):
    """A scenario failed; the message says what was expected and what happened."""


def check(condition, message):
    if not condition:
        raise Failure(message)
