"""Pages decoded into typed records (msgspec) where a provider declares their shape.

A re-poll reads every record of every page but normalizes only the few that changed, so most of
a page is never needed as a dict. A typed decode checks the declared field types while parsing
(what `peek` would otherwise check record by record) and skips the fields nobody reads. A record
asked for as a dict (an odd one) is decoded alone, from its span of the body (the spans are
found once per page, the first time, at about a third of the typed decode's cost). A changed
record that the normalizer reads only through its declared fields is built from the typed record
itself (`declared`), with no second parse. A page that does not fit the declared shape is
decoded as plain JSON, so it reads as before.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, overload

import msgspec
import orjson


class TypedRecords(Sequence[Mapping[str, Any]]):
    """A page's records: `typed` as decoded, each one a plain dict on demand."""

    __slots__ = ("_body", "_dicts", "_key_field", "_raw", "_spans", "typed")

    def __init__(
        self,
        typed: list[Any],
        *,
        body: bytes,
        spans: msgspec.json.Decoder[Any],
        key_field: str,
    ) -> None:
        self.typed = typed
        self._body = body
        self._spans = spans  # decodes the body into its records' raw spans (`_raw`)
        self._key_field = key_field
        self._raw: list[msgspec.Raw] | None = None
        self._dicts: dict[int, Mapping[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.typed)

    @overload
    def __getitem__(self, index: int) -> Mapping[str, Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[Mapping[str, Any]]: ...
    def __getitem__(self, index: int | slice) -> Mapping[str, Any] | Sequence[Mapping[str, Any]]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        size = len(self.typed)
        if not -size <= index < size:
            raise IndexError("record index out of range")
        if index < 0:
            index += size
        found = self._dicts.get(index)
        if found is None:
            if self._raw is None:
                self._raw = self._spans.decode(self._body).items
            raw = self._raw[index]
            try:
                found = orjson.loads(memoryview(raw))  # orjson refuses a Raw itself
            except orjson.JSONDecodeError:  # JSON msgspec took: the same parser reads it again
                found = msgspec.json.decode(raw)
            self._dicts[index] = found
        return found

    def declared(self, index: int) -> dict[str, Any]:
        """Record `index` as a dict of only the fields its typed shape declares (wire names, a
        field left unset omitted), from `typed`: for a reader that needs no other field."""
        record = self.typed[index]
        return {
            name: value
            for name, value in zip(
                record.__struct_encode_fields__, msgspec.structs.astuple(record), strict=True
            )
            if value is not msgspec.UNSET
        }

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same dicts (a plain page's list, say)."""
        if not isinstance(other, Sequence) or isinstance(other, str | bytes):
            return NotImplemented
        return list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"TypedRecords({list(self)!r})"

    def item_key(self, index: int) -> Hashable:
        """The paging key of one record (OffsetPager tells pages apart by it), from `typed`."""
        value = getattr(self.typed[index], self._key_field)
        return value if isinstance(value, str | int) else None


def typed_decoder(
    envelope: type[msgspec.Struct], *, items_key: str, more_key: str, key_field: str
) -> Callable[[bytes], Any]:
    """A JSON decoder for ProviderClient.get_json: `{items_key: TypedRecords, more_key: ...}`
    when the body fits `envelope` (a Struct with those two fields), else the plain JSON."""
    decoder = msgspec.json.Decoder(envelope)
    spans = msgspec.json.Decoder(
        msgspec.defstruct("Spans", [("items", list[msgspec.Raw])], rename={"items": items_key})
    )

    def decode(body: bytes) -> Any:
        try:
            page = decoder.decode(body)
        except msgspec.DecodeError:  # not this shape (or not JSON: orjson says so)
            return orjson.loads(body)
        items = TypedRecords(getattr(page, items_key), body=body, spans=spans, key_field=key_field)
        return {items_key: items, more_key: getattr(page, more_key)}

    return decode
