"""User-facing errors."""


class CMRRiskError(Exception):
    """An error caused by the user's input (file, row, field): the message says what and what to do.

    The command line prints the message without a traceback and exits with status 2.
    """
