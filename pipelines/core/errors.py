"""The one exception type tasks turn into a clear message and a non-zero exit."""


class MlopsError(Exception):
    """A failure the user can act on; its message says what went wrong and where."""
