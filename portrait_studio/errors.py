"""Typed errors. Every error a user can cause carries a message written for that user.

The UI turns :class:`PortraitStudioError` into ``gr.Error(str(err))``; the CLI prints it on one line
and exits with :attr:`PortraitStudioError.exit_code`. Anything else is a bug and gets a traceback.
"""

from __future__ import annotations


class PortraitStudioError(Exception):
    """Base class of all user-facing errors. ``str(err)`` is the whole message."""

    exit_code = 2


class InputError(PortraitStudioError):
    """The user gave us something we cannot use (bad file, bad value, unknown name)."""


class MissingWeightsError(PortraitStudioError):
    """A model role's weights are not on disk and cannot be downloaded right now."""

    def __init__(self, role: str, source: str, command: str, reason: str = "") -> None:
        self.role = role
        self.source = source
        self.command = command
        detail = f" ({reason})" if reason else ""
        super().__init__(
            f"Missing model weights for '{role}' ({source}){detail}. "
            f"Fetch them on a networked machine with: {command}"
        )


class CancelledError(PortraitStudioError):
    """The user pressed cancel; the job stopped cleanly between two steps."""

    exit_code = 130

    def __init__(self, message: str = "Cancelled.") -> None:
        super().__init__(message)


class OutOfMemoryError(PortraitStudioError):
    """The device ran out of memory; the message says what to lower."""


class BusyError(PortraitStudioError):
    """A queue or a resource is full; try again later."""
