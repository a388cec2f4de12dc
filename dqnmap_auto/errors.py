"""Exceptions the CLI turns into one-line messages (exit code 2), and the divergence signal."""

from __future__ import annotations


class DqnmapError(Exception):
    """Base class of the errors that are the user's to fix; their message is one line."""


class ConfigError(DqnmapError):
    """A config, spec or command-line value is invalid; the message names the field."""


class EnvCreationError(DqnmapError):
    """The requested gymnasium environment cannot be built."""


class DivergenceError(RuntimeError):
    """Training produced a non-finite loss or Q-value; ``reason`` says which and at which step."""

    def __init__(self, reason: str, *, step: int) -> None:
        super().__init__(reason)
        self.reason = reason
        self.step = step
