"""The one exception type users see: a single sentence, no traceback, exit code 2."""


class GenlabError(Exception):
    """A problem with the user's input (a flag, a file, a run folder) that they can fix.

    The message is one sentence naming the flag or file and what to do; the CLI prints it and
    exits with code 2.
    """

    exit_code = 2


class DataError(GenlabError):
    """A data file is missing, corrupt, truncated or inconsistent."""


class DownloadError(DataError):
    """A file could not be downloaded or failed its checksum on every mirror.

    `reason` is the last mirror's failure alone (no advice), for callers that wrap the error.
    """

    def __init__(self, message: str, reason: str | None = None):
        super().__init__(message)
        self.reason = reason or message
