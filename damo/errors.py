"""Errors that the CLI turns into one line on stderr and exit code 2."""


class DamoError(Exception):
    """A user-facing error: bad input, a bad option, an unusable file or system."""

    exit_code = 2


class RecordFileError(DamoError):
    """A record file is missing, empty, truncated, corrupt or of unknown format."""

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem
