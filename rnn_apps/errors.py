"""The one exception type that the CLI turns into a one-line message and exit status 2."""


class UserError(Exception):
    """Bad input from the user (flags, files, data names): say what to do instead, no traceback."""
