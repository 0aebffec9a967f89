"""Errors the CLI reports to the user as one clear message (exit code 2), never as a traceback."""


class UserError(Exception):
    """Bad input or a missing prerequisite. ``hint`` says what to do about it."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  fix: {self.hint}" if self.hint else self.message
