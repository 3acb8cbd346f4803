"""Refused: what the worker cannot do now (a job command, a player's request for a run), with the
HTTP status, message and Retry-After the API answers."""


class Refused(Exception):
    """A job command or a run that cannot be carried out now: HTTP status, message, Retry-After."""

    def __init__(self, status, message, retry_after=None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
