"""User-facing errors. The CLI prints their message (no traceback) and exits with code 2."""
from typing import Optional


class UserError(Exception):
    """A mistake the user can fix: bad input file, bad recipe, missing download, ..."""

    exit_code = 2


class DataError(UserError):
    """A bad row in a data file; the message names file, line and field."""

    def __init__(self, path, line: Optional[int], field: Optional[str], problem: str):
        self.path, self.line, self.field, self.problem = str(path), line, field, problem
        where = self.path + (f", line {line}" if line is not None else "")
        where += f", field '{field}'" if field else ""
        super().__init__(f"{where}: {problem}")


class FetchError(UserError):
    """A built-in data set or weight file could not be downloaded or failed its checksum."""


class RecipeError(UserError):
    """An invalid recipe; the message names the key path (and YAML line when known)."""


class PackageError(UserError):
    """An edge package that is incomplete, corrupted or does not match its manifest."""
