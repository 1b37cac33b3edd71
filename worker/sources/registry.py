"""Provider slug -> how to build its Source. A new provider is one module plus one line here."""

from __future__ import annotations

from worker.errors import ConfigError
from worker.sources import replyio, unify, whippy, zendesk_sell
from worker.sources.base import Source
from worker.sources.params import ProviderInfo, SourceParams

__all__ = ["PROVIDERS", "ProviderInfo", "SourceParams", "build_source"]


# One line per provider: each module declares its own ProviderInfo as data.
PROVIDERS: dict[str, ProviderInfo] = {
    info.slug: info
    for info in (replyio.PROVIDER, unify.PROVIDER, zendesk_sell.PROVIDER, whippy.PROVIDER)
}


def build_source(provider: str, params: SourceParams) -> Source:
    info = PROVIDERS.get(provider)
    if info is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"source {params.name!r}: unknown provider {provider!r} (known: {known})")
    return info.build(params)
