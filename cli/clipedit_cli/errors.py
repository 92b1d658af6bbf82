"""What the command tells scripts through its exit code (documented in ``clipedit --help`` and the
docs: docs/cli.md). Every failure is a CliError with one of these codes and a message that says what to do."""

from __future__ import annotations

from enum import IntEnum


class Exit(IntEnum):
    OK = 0
    JOB_NOT_SUCCEEDED = 1  # a job watched to its end finished FAILED, TIMED_OUT or REJECTED
    USAGE = 2  # bad options or input (a manifest refused before anything was stored)
    NO_TARGET = 3  # no reachable stack: no --stack, no running local stack, no credentials
    NOT_FOUND = 4  # no such job or batch
    REFUSED = 5  # not possible for this job (retry a running job, cancel on Kling, download a failure)
    TIMEOUT = 6  # --timeout passed before the jobs finished
    UNHEALTHY = 7  # doctor, reconcile or dlq list found a problem


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 a watched job ended FAILED/TIMED_OUT/REJECTED; 2 bad usage or input; "
    "3 no reachable stack; 4 no such job or batch; 5 not possible for this job; 6 --timeout reached; "
    "7 doctor, reconcile or dlq list found a problem."
)


class CliError(Exception):
    def __init__(self, message: str, code: Exit) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
