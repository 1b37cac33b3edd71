"""The demo's simulated Zendesk Sell (Reach) account and its changes over time.

Ids are fixed so the script can name enrollments without `populate_zendesk_sell` returning them.
"""

from __future__ import annotations

from worker.demo.fakes.zendesk_sell import ZendeskSellWorld
from worker.demo.world import Change

SEQUENCE = 21124
_LEADS = {5001: 1988695232, 5002: 1988695233, 5003: 1988695234}  # enrollment id -> lead id
_NEW_ENROLLMENT, _NEW_LEAD = 5004, 1988695235
# lead id -> (first name, last name, organisation): events show these, looked up from Sell
_PEOPLE = {
    1988695232: ("Mark", "Johnson", "Design Services Company"),
    1988695233: ("Ana", "Silva", "Northwind"),
    1988695234: ("Kuba", "Tutaj", "Base CRM"),
    1988695235: ("Lena", "Berg", "Fjord Analytics"),
}


def populate_zendesk_sell(world: ZendeskSellWorld) -> None:
    world.add_sequence("Trial nurture", steps=4, sequence_id=SEQUENCE)
    for lead_id, (first, last, company) in _PEOPLE.items():
        email = f"{first.lower()}.{last.lower()}@example.com"
        world.add_lead(
            first_name=first,
            last_name=last,
            email=email,
            organization_name=company,
            lead_id=lead_id,
        )
    for enrollment_id, lead_id in _LEADS.items():
        world.enroll(SEQUENCE, resource_id=lead_id, enrollment_id=enrollment_id)


def _enroll_new(world: ZendeskSellWorld) -> None:
    world.enroll(SEQUENCE, resource_id=_NEW_LEAD, enrollment_id=_NEW_ENROLLMENT)


def script_zendesk_sell(world: ZendeskSellWorld) -> list[Change]:
    """Sell shows states and step positions only: no reply, bounce or opt-out to script."""
    return [
        Change(
            says="Zendesk Sell: lead 1988695232 moves to step 2",
            apply=lambda: world.advance_step(5001),
        ),
        Change(
            says="Zendesk Sell: lead 1988695233's enrollment is blocked",
            apply=lambda: world.block(5002),
        ),
        Change(
            says="Zendesk Sell: new lead 1988695235 enrolled",
            apply=lambda: _enroll_new(world),
        ),
        Change(
            says="Zendesk Sell: lead 1988695234 is stopped by hand",
            apply=lambda: world.finish(5003, reason="manual"),
        ),
    ]
