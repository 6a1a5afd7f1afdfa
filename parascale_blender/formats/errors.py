"""The one error type every reader raises for malformed content."""

from __future__ import annotations

import os


class FormatError(ValueError):
    """Malformed or unsupported file content, located by file, line and field.

    ``str()`` reads like ``poses.txt:12: field 'r13': expected a number, got 'abc'``; the line
    and field parts are left out when unknown. Line numbers are 1-based.
    """

    def __init__(
        self,
        file: str | os.PathLike | None,
        message: str,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.file = None if file is None else os.fspath(file)
        self.message = message
        self.line = line
        self.field = field
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.file if self.file is not None else "<input>"
        if self.line is not None:
            where += f":{self.line}"
        field = f" field '{self.field}':" if self.field else ""
        return f"{where}:{field} {self.message}"

    def __reduce__(self):
        return (type(self), (self.file, self.message, self.line, self.field))
