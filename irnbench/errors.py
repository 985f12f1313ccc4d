"""Exceptions with messages meant for users (the CLI prints them without a traceback)."""

from __future__ import annotations

import functools
import sys


class IrnbenchError(Exception):
    """Base class: a user-facing error (CLI exit code 1 unless stated)."""

    exit_code = 1


class UnknownNameError(IrnbenchError, KeyError):
    """An unknown method, task or dataset name; the message lists the known ones (exit 2)."""

    exit_code = 2

    def __init__(self, kind: str, name: str, known: list[str], hint: str = ""):
        self.kind, self.name, self.known = kind, name, sorted(known)
        tail = f" ({hint})" if hint else ""
        super().__init__(
            f"unknown {kind} {name!r}; known {kind}s: {', '.join(self.known) or '(none)'}{tail}"
        )

    def __str__(self) -> str:  # KeyError would repr() the message
        return self.args[0]


class WeightsNotFound(IrnbenchError, FileNotFoundError):
    """A method has no weights for the asked setting; the message gives the training command."""

    def __init__(self, message: str, train_command: str | None = None):
        super().__init__(message)
        self.train_command = train_command


class DatasetUnavailable(IrnbenchError):
    """A dataset cannot be loaded (offline, missing files, no usable images)."""


class InvalidSetting(IrnbenchError, ValueError):
    """A task or method setting is out of range (exit 2)."""

    exit_code = 2


class CheckpointError(IrnbenchError):
    """A checkpoint that cannot be imported: unreadable, refused, or of another model (exit 2)."""

    exit_code = 2


def cli_errors(fn):
    """CLI decorator: an ``IrnbenchError`` becomes one ``Error: …`` line and its exit code."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except IrnbenchError as exc:
            import click

            click.echo(f"Error: {exc}", err=True)
            sys.exit(exc.exit_code)

    return wrapper
