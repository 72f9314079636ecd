"""The one exception type for user mistakes (bad files, bad flags).

The CLI prints it as a single line and exits non-zero; anything else is a bug
and keeps its traceback.
"""


class UserError(Exception):
    """A problem the user can fix: the message names the file or flag and the reason."""
