"""The exceptions the CLI turns into an `Error:` message: UserError (bad input, one line, exit 2)
and ExportError (the export itself failed, with its cause, exit 1)."""


class UserError(Exception):
    """Bad input from the user (flags, files, data names): say what to do instead, no traceback."""


class ExportError(Exception):
    """Export failed for a reason that is not the user's input (conversion, parity): the message
    keeps the cause (e.g. the converter's whole report), and the CLI exits with status 1."""
