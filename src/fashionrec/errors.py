"""Exceptions that carry a message meant for the user.

Anything raised as a :class:`FashionrecError` is a user mistake or bad input: the CLI prints its message as
one line on stderr and exits non-zero, the API turns it into a 4xx JSON error. Everything else is a bug and
keeps its traceback.
"""


class FashionrecError(Exception):
    """A problem the user can fix (bad input, missing file, wrong option)."""


class ImageError(FashionrecError):
    """An image could not be decoded or is outside the accepted limits."""


class IndexFormatError(FashionrecError):
    """An index file is missing, corrupt, from another version or not ours."""
