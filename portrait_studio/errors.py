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


class IncompleteWeightsError(MissingWeightsError):
    """A role's folder is there but some of its required files are not (an interrupted download, a cache
    written by another client). The message names the files and the command that repairs the folder."""

    def __init__(self, role: str, source: str, command: str, missing: list[str], reason: str = "") -> None:
        self.role = role
        self.source = source
        self.command = command
        self.missing = list(missing)
        shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
        detail = f" ({reason})" if reason else ""
        PortraitStudioError.__init__(self, f"{role}: {shown} missing{detail} — run `{command}`")


class BadWeightsFileError(MissingWeightsError):
    """A weights file is on disk but cannot be loaded: refused pickle, truncated, missing keys, wrong shapes.

    The message names the file, what was wrong with it, and what to do about it.
    """

    def __init__(self, role: str, path: str, command: str, problem: str, advice: str = "") -> None:
        self.role = role
        self.source = path
        self.command = command
        self.problem = problem
        advice = advice or f"delete it and fetch it again with `{command}`"
        PortraitStudioError.__init__(self, f"{role}: {path} cannot be loaded ({problem}); {advice}.")
