"""Guards that keep paginators honest, and checks for provider envelopes.

A listing that ends early looks complete and would turn every unseen enrollment into a
`removed` event, so anything odd about paging or envelopes is a MalformedResponse, never a
silent stop.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from typing import Any

from worker.errors import MalformedResponse

_MAX_ID_LENGTH = 256


class PageGuard:
    """Counts pages of one listing and refuses repeated cursors/offsets and runaway lengths.

    Call `advance(marker)` before fetching each page; `marker` is the cursor or offset that
    page is requested with. Memory is one small entry per page, never per record.
    """

    __slots__ = ("_last_page", "_max_pages", "_pages", "_seen", "_source")

    def __init__(self, max_pages: int, *, source: str = "") -> None:
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        self._max_pages = max_pages
        self._source = source
        self._pages = 0
        self._seen: set[Hashable] = set()
        self._last_page: Hashable = None

    @property
    def pages(self) -> int:
        return self._pages

    def advance(self, marker: Hashable, *, where: str) -> None:
        if marker in self._seen:
            raise MalformedResponse(
                "pagination loop: cursor repeated", source=self._source, where=where
            )
        if self._pages >= self._max_pages:
            raise MalformedResponse(
                f"pagination runaway: more than {self._max_pages} pages",
                source=self._source,
                where=where,
            )
        self._seen.add(marker)
        self._pages += 1

    def received(self, fingerprint: Hashable, *, where: str) -> None:
        """Offset paging cannot repeat a cursor, but a server can serve the same page twice."""
        if fingerprint is not None and fingerprint == self._last_page:
            raise MalformedResponse(
                "pagination loop: page repeats the previous page", source=self._source, where=where
            )
        self._last_page = fingerprint


def _kind(value: object) -> str:
    """The JSON type of `value`, with its article ("a string", "null")."""
    if value is None:
        return "null"
    if isinstance(value, Mapping):
        return "an object"
    names = {bool: "a boolean", int: "a number", float: "a number", str: "a string"}
    return names.get(type(value), "an array" if isinstance(value, list) else "a value")


def require_object(obj: object, *, source: str, where: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise MalformedResponse(
            f"response is {_kind(obj)}, expected an object", source=source, where=where
        )
    return obj


def require_list(
    obj: Mapping[str, Any], key: str, *, source: str, where: str
) -> list[Mapping[str, Any]]:
    """`obj[key]` as a list whose items are all JSON objects."""
    if key not in obj:
        raise MalformedResponse(f"missing field {key!r}", source=source, where=where)
    value = obj[key]
    if not isinstance(value, list):
        raise MalformedResponse(
            f"field {key!r} is {_kind(value)}, expected an array", source=source, where=where
        )
    for index, item in enumerate(value):
        if type(item) is not dict and not isinstance(item, Mapping):  # dict: skip the ABC check
            raise MalformedResponse(
                f"field {key!r}[{index}] is {_kind(item)}, expected an object",
                source=source,
                where=where,
            )
    return value


def require_bool(obj: Mapping[str, Any], key: str, *, source: str, where: str) -> bool:
    if key not in obj:
        raise MalformedResponse(f"missing field {key!r}", source=source, where=where)
    value = obj[key]
    if not isinstance(value, bool):
        raise MalformedResponse(
            f"field {key!r} is {_kind(value)}, expected a boolean", source=source, where=where
        )
    return value


def optional_str(obj: Mapping[str, Any], key: str, *, source: str, where: str) -> str | None:
    """`obj[key]` as a string or None; the key itself must be present."""
    if key not in obj:
        raise MalformedResponse(f"missing field {key!r}", source=source, where=where)
    value = obj[key]
    if value is not None and not isinstance(value, str):
        raise MalformedResponse(
            f"field {key!r} is {_kind(value)}, expected a string or null",
            source=source,
            where=where,
        )
    return value


def require_id(obj: Mapping[str, Any], key: str, *, source: str, where: str) -> str:
    """An identifier given as a string or an integer, returned as a non-empty string."""
    if key not in obj:
        raise MalformedResponse(f"missing field {key!r}", source=source, where=where)
    value = obj[key]
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MalformedResponse(
            f"field {key!r} is {_kind(value)}, expected an id", source=source, where=where
        )
    text = str(value)
    # Ids end up in keys, events and messages: refuse empty, huge or multi-line ones.
    if not text or len(text) > _MAX_ID_LENGTH or not text.isprintable():
        raise MalformedResponse(f"field {key!r} is not a usable id", source=source, where=where)
    return text


def check_page_size(page_size: int, maximum: int) -> int:
    if not 1 <= page_size <= maximum:
        raise ValueError(f"page_size must be between 1 and {maximum}")
    return page_size


def allow_list(sequences: Iterable[object]) -> tuple[str, ...]:
    """Configured sequence ids as strings, first occurrence kept, in order."""
    return tuple(dict.fromkeys(str(s) for s in sequences))
