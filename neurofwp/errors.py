"""The neurofwp exception family.

Every error raised on purpose by neurofwp derives from :class:`NeurofwpError`, so a
caller (and the command line) can tell a problem with the input apart from a bug.
Where the cause is a bad value the class also derives from :class:`ValueError`;
where it is a bad type (a dtype, an object of the wrong kind), from :class:`TypeError`.
"""

from __future__ import annotations


class NeurofwpError(Exception):
    """Base class of every error neurofwp raises deliberately."""


class ShapeError(NeurofwpError, ValueError):
    """A tensor or array has the wrong number of dimensions or mismatching sizes."""


class DTypeError(NeurofwpError, TypeError):
    """A tensor has an unsupported dtype, or tensors disagree in dtype or device."""


class NonFiniteError(NeurofwpError, ValueError):
    """NaN or infinite values: in an input, or in a result computed from finite inputs.

    In the second case the computation itself diverged or overflowed (for the delta rule,
    typically keys outside its stable range 0 ≤ β‖k‖² ≤ 2), and the message names the
    cause and the fix.
    """


class OutOfRangeError(NeurofwpError, ValueError):
    """A value lies outside its allowed range (a learning rate, a decay, a size)."""


class UnknownNameError(NeurofwpError, ValueError):
    """A name (mode, feature map, rule, parameter) is not one neurofwp knows."""

    def __init__(self, kind: str, name: object, known: list[str] | tuple[str, ...]):
        self.kind = kind
        self.name = name
        self.known = tuple(known)
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(self.known)}")
