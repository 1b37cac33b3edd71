"""The one exception tree of seqwatch, classified by what the caller should do.

    SeqwatchError
    ├── ConfigError            bad configuration or usage: exit 2, never retried
    ├── SourceError            a poll of one source failed; nothing is committed past it
    │   ├── SourceUnavailable  transient (timeout, connection, 5xx, 429 beyond budget): retry later
    │   ├── SourceRejected     credentials/permissions/path wrong (401/403/404): fix config
    │   └── MalformedResponse  the provider sent something we cannot trust (bad JSON, missing
    │                          field, pagination loop): retry later, alert if it persists
    ├── DeliveryError          one delivery attempt to one destination failed
    │   ├── DeliveryRetriable  408/409/425/429/5xx, timeouts, connection errors: back off
    │   └── DeliveryPermanent  other 4xx, 3xx, refused target: dead-letter at once
    ├── StoreError             Redis unreachable or misbehaving: retry later
    └── LeaseLost              another worker holds the source's lease; our commit is refused

Messages are one line, name the source/destination and what failed, and never carry a
secret (API keys, webhook secrets, Slack URLs) or a provider payload: every message passes
through worker/redaction.py when the error is made, whatever a provider or peer echoed into it.
"""

from __future__ import annotations

from worker.redaction import scrub


class SeqwatchError(Exception):
    """Base of every error seqwatch raises on purpose."""

    def __init__(self, message: str = "", *args: object) -> None:
        super().__init__(scrub(message), *args)


class ConfigError(SeqwatchError):
    """Invalid configuration or usage; the message names the key, never its value."""


class SourceError(SeqwatchError):
    """A source listing failed. `source` names the configured source."""

    def __init__(
        self, message: str, *, source: str = "", where: str = "", http_status: int | None = None
    ) -> None:
        self.source = source
        self.where = where
        self.detail = scrub(message)
        self.http_status = http_status  # the provider's answer, when the failure was one
        parts = [p for p in (f"source {source!r}" if source else "", where) if p]
        prefix = ": ".join(parts)
        super().__init__(f"{prefix}: {message}" if prefix else message)


class SourceUnavailable(SourceError):
    """Transient provider failure; the poll is retried on the next tick."""


class SourceRejected(SourceError):
    """The provider refused us (401/403/404): credentials, permissions or base_url are wrong."""


class MalformedResponse(SourceError):
    """The provider's answer cannot be trusted (bad JSON, missing field, pagination anomaly)."""


class DeliveryError(SeqwatchError):
    """One delivery attempt failed."""


class DeliveryRetriable(DeliveryError):
    """Try again later; `retry_after` is the peer's requested delay in seconds, if any."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        self.retry_after = retry_after
        super().__init__(message)


class DeliveryPermanent(DeliveryError):
    """Retrying cannot help; the delivery is dead-lettered at once."""


class StoreError(SeqwatchError):
    """Redis is unreachable or answered unexpectedly."""


class LeaseLost(SeqwatchError):
    """Our lease on a source expired or was taken over; the commit was refused."""
