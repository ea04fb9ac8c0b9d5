"""The single exception type for bad input.

Anything a user can get wrong (missing data, an unreadable image, a wrong
``--dataset``, a checkpoint of another question) raises ``UsageError`` with a
one-line message; ``common.cli.run_main`` turns it into that line on stderr
and exit status 2, without a traceback.
"""


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit status 2."""
