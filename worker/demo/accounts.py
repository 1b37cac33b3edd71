"""The demo's four simulated accounts: one fake API server per provider and its scripted changes."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import chain, zip_longest

from worker.demo import world as demo_world
from worker.demo.fakes.replyio import ReplyioApp, ReplyioWorld
from worker.demo.fakes.server import App, FakeServer
from worker.demo.fakes.unify import UnifyApp, UnifyWorld
from worker.demo.fakes.whippy import WhippyApp, WhippyWorld
from worker.demo.fakes.zendesk_sell import ZendeskSellApp, ZendeskSellWorld
from worker.demo.whippy import populate_whippy, script_whippy
from worker.demo.world import Change
from worker.demo.zendesk_sell import populate_zendesk_sell, script_zendesk_sell


@dataclass(frozen=True, slots=True, kw_only=True)
class DemoAccount:
    source: str
    provider: str
    api_key: str
    server: FakeServer


def _account(source: str, provider: str, app: App, api_key: str) -> DemoAccount:
    return DemoAccount(source=source, provider=provider, api_key=api_key, server=FakeServer(app))


def build_accounts() -> tuple[list[DemoAccount], list[Change]]:
    """The accounts, and every scripted change interleaved across providers."""
    reply, unify, sell, whippy = ReplyioWorld(), UnifyWorld(), ZendeskSellWorld(), WhippyWorld()
    demo_world.populate_replyio(reply)
    people = demo_world.populate_unify(unify)
    populate_zendesk_sell(sell)
    populate_whippy(whippy)
    accounts = [
        _account("reply-demo", "replyio", ReplyioApp(reply, api_key="demo-reply"), "demo-reply"),
        _account("unify-demo", "unify", UnifyApp(unify, api_key="demo-unify"), "demo-unify"),
        _account("sell-demo", "zendesk_sell",
                 ZendeskSellApp(sell, api_key="demo-sell"), "demo-sell"),
        _account("whippy-demo", "whippy", WhippyApp(whippy, api_key="demo-whippy"), "demo-whippy"),
    ]  # fmt: skip
    scripts = [
        demo_world.script(reply, unify, people),
        script_zendesk_sell(sell),
        script_whippy(whippy),
    ]
    changes = [c for c in chain.from_iterable(zip_longest(*scripts)) if c is not None]
    return accounts, changes
