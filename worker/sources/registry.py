"""Provider slug -> how to build its Source. A new provider is one module plus one line here."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from worker.errors import ConfigError
from worker.sources import replyio, unify, whippy, zendesk_sell
from worker.sources.base import Source
from worker.sources.params import SourceParams
from worker.sources.shared_limiter import Quota

__all__ = ["PROVIDERS", "ProviderInfo", "SourceParams", "build_source"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ProviderInfo:
    slug: str
    default_base_url: str
    requests_per_second: float
    incremental: bool
    build: Callable[[SourceParams], Source] = field(repr=False)
    # The documented quota windows, shared by every worker through Redis.
    quotas: tuple[Quota, ...] = ()


PROVIDERS: dict[str, ProviderInfo] = {
    info.slug: info
    for info in (
        ProviderInfo(
            slug="replyio",
            default_base_url=replyio.DEFAULT_BASE_URL,
            requests_per_second=replyio.REQUESTS_PER_SECOND,
            incremental=False,
            build=replyio.build,
            quotas=(Quota(requests=100, per_seconds=60), Quota(requests=3000, per_seconds=3600)),
        ),
        ProviderInfo(
            slug="unify",
            default_base_url=unify.DEFAULT_BASE_URL,
            requests_per_second=unify.REQUESTS_PER_SECOND,
            incremental=True,
            build=unify.build,
            quotas=(Quota(requests=100_000, per_seconds=300),),
        ),
        ProviderInfo(
            slug="zendesk_sell",
            default_base_url=zendesk_sell.DEFAULT_BASE_URL,
            requests_per_second=zendesk_sell.REQUESTS_PER_SECOND,
            incremental=False,
            build=zendesk_sell.build,
            quotas=(Quota(requests=10, per_seconds=1), Quota(requests=36_000, per_seconds=3600)),
        ),
        ProviderInfo(
            slug="whippy",
            default_base_url=whippy.DEFAULT_BASE_URL,
            requests_per_second=whippy.REQUESTS_PER_SECOND,
            incremental=False,
            build=whippy.build,
            quotas=(Quota(requests=20, per_seconds=1),),  # under the documented 25/s,
        ),
    )
}


def build_source(provider: str, params: SourceParams) -> Source:
    info = PROVIDERS.get(provider)
    if info is None:
        known = ", ".join(sorted(PROVIDERS))
        raise ConfigError(f"source {params.name!r}: unknown provider {provider!r} (known: {known})")
    return info.build(params)
