"""The one scrubber every outbound error text passes through (SPEC §7; issue 9).

It replaces every configured secret (API keys, webhook secrets and their key material, Slack
URLs, the Redis URL and password) and anything shaped like a Slack webhook URL or a `whsec_`
key, whoever configured it. The process-wide instance is set once at startup
(`configure`, from worker/app/logs.py) and used by the exception tree (worker/errors.py), the
structured and stdlib logging, and what is written to Redis or printed (status, poll output).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import quote, urlsplit

REDACTED = "[REDACTED]"
MIN_SECRET = 4  # shorter values would redact ordinary words
_SHAPES = re.compile(
    r"https?://hooks\.slack(?:-gov)?\.com/[^\s\"'<>\\]+"  # Slack incoming webhooks, workflows
    r"|whsec_[A-Za-z0-9+/=_-]+"  # Standard Webhooks secrets
)


MIN_TOKEN = 16  # a URL's last path segment this long is its token (Slack's is 24 characters)


def _variants(secret: str) -> list[str]:
    """The secret as configured, and the forms an echo may carry it in."""
    found = [secret, quote(secret, safe="")]  # percent-encoded, as in a query string
    if secret.startswith("whsec_") and len(secret) > len("whsec_") + MIN_SECRET:
        found.append(secret.removeprefix("whsec_"))  # the key material alone
    if "://" in secret:
        token = urlsplit(secret).path.rstrip("/").rpartition("/")[2]
        if len(token) >= MIN_TOKEN:
            found.append(token)  # a webhook URL's token alone
    return found


# Above this many secrets, a text is first checked for any secret's last characters (one set
# lookup per position) instead of searched for every secret: a worker with 1,000 sources has
# 1,000 API keys, and every string of every log line passes through here. The last characters,
# not the first: keys of one kind often share a prefix ("sk_live_"), rarely an ending.
_INDEX_ABOVE = 32

# Up to this many short texts keep their scrubbed form (a Scrubber's secrets never change).
_KNOWN_TEXTS, _KNOWN_TEXT = 4096, 80


class Scrubber:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        values = {v for s in secrets if s for v in _variants(s) if len(v) >= MIN_SECRET}
        # Longest first: a secret containing another is replaced whole.
        self.secrets = sorted(values, key=len, reverse=True)
        self._endings = (
            frozenset(v[-MIN_SECRET:] for v in values) if len(values) > _INDEX_ABOVE else None
        )
        # Short texts already scrubbed (a log line's event, source and provider names recur).
        self._known: dict[str, str] = {}

    def __call__(self, text: str) -> str:
        known = self._known.get(text)
        if known is not None:
            return known
        scrubbed = self._scrubbed(text)
        if len(text) <= _KNOWN_TEXT:
            if len(self._known) >= _KNOWN_TEXTS:
                self._known.clear()  # one-off texts (timestamps) filled it: the recurring return
            self._known[text] = scrubbed
        return scrubbed

    def _scrubbed(self, text: str) -> str:
        if self._may_hold_a_secret(text):
            for secret in self.secrets:
                if secret in text:
                    text = text.replace(secret, REDACTED)
        if "whsec_" in text or "hooks.slack" in text:  # what every _SHAPES match contains
            return _SHAPES.sub(REDACTED, text)
        return text

    def _may_hold_a_secret(self, text: str) -> bool:
        """False only when no secret occurs in `text`: one would leave one of the `_endings`
        at some position (then every secret is searched, as without the index)."""
        endings = self._endings
        if endings is None:
            return bool(self.secrets)
        return any(text[i : i + MIN_SECRET] in endings for i in range(len(text) - MIN_SECRET + 1))


_active = Scrubber()


def configure(secrets: Iterable[str]) -> None:
    """Sets the process-wide secrets (called once at startup, before anything can fail)."""
    global _active
    _active = Scrubber(secrets)


def scrub(text: str) -> str:
    """`text` with every configured secret and secret-shaped value replaced."""
    return _active(text)


def scrub_optional(text: str | None) -> str | None:
    return None if text is None else _active(text)
