"""Retry policy: which failures are retried, and how long to wait before the next attempt."""

from __future__ import annotations

import random
from dataclasses import dataclass

from langchain_lamatic.errors import (
    LamaticConnectionError,
    LamaticError,
    LamaticRateLimitError,
    LamaticServerError,
)

RETRYABLE_STATUS_CODES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, honouring ``Retry-After`` up to ``max_retry_after``.

    Attributes:
        max_retries: retries after the first attempt; 0 disables retrying.
        initial_delay: the first backoff, in seconds; each retry doubles it.
        max_delay: the largest computed backoff, in seconds.
        max_retry_after: the largest server-requested wait honoured, in seconds. A longer
            ``Retry-After`` is not waited for: the error is raised at once.
    """

    max_retries: int = 2
    initial_delay: float = 0.5
    max_delay: float = 8.0
    max_retry_after: float = 60.0

    def should_retry(self, error: LamaticError, *, idempotent: bool, request_sent: bool) -> bool:
        """Return whether ``error`` may be retried for an operation of this kind.

        Failures before the request was sent, 429, 502, 503 and 504 are retried for every
        operation. A read timeout, a dropped connection after sending, and any other 5xx are
        retried only for idempotent operations, because Lamatic has no idempotency key and a
        flow may already have run. A rate-limit or server error whose ``Retry-After`` exceeds
        ``max_retry_after`` is never retried.
        """
        if isinstance(error, LamaticConnectionError) and not request_sent:
            return True
        retry_after = _retry_after(error)
        if retry_after is not None and retry_after > self.max_retry_after:
            return False
        if isinstance(error, LamaticRateLimitError):
            return True
        if isinstance(error, LamaticServerError):
            return error.status_code in RETRYABLE_STATUS_CODES or idempotent
        if isinstance(error, LamaticConnectionError):
            return idempotent
        return False

    def delay(self, attempt: int, error: LamaticError) -> float:
        """Return the seconds to wait before retry number ``attempt`` (1 for the first retry).

        The server's ``Retry-After``, capped at ``max_retry_after``, replaces the backoff.
        """
        retry_after = _retry_after(error)
        if retry_after is not None:
            return float(min(retry_after, self.max_retry_after))
        backoff = min(self.max_delay, self.initial_delay * 2.0 ** (attempt - 1))
        # Half fixed, half random ("equal jitter"): spreads retries from many clients while
        # keeping a minimum pause.
        return backoff / 2 + random.uniform(0, backoff / 2)  # noqa: S311


def _retry_after(error: LamaticError) -> float | None:
    """Return the wait in seconds that the response's ``Retry-After`` header requested."""
    if isinstance(error, (LamaticRateLimitError, LamaticServerError)):
        return error.retry_after
    return None
