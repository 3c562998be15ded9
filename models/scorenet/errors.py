"""Errors raised for bad user input: one clear sentence naming the file and the problem."""

from __future__ import annotations

from os import PathLike


class ScoreNetInputError(ValueError):
    """Bad input from the user (a file, a folder, an option). The message is shown as is.

    The command line turns it into exit code 2 with the one-line message; the plugin shows it
    as a napari notification.
    """

    def __init__(self, message: str, path: str | PathLike[str] | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


def one_line(err: BaseException) -> str:
    """An exception's text on one line, whatever the library that raised it printed."""
    return " ".join(str(err).split())


class CheckpointError(ScoreNetInputError):
    """A checkpoint is missing, corrupt, untrusted or does not match the requested model."""
