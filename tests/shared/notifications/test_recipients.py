"""Who hears about which event: the customer's own recipients, else the reseller's default, and the operator."""
from __future__ import annotations

from shared.db.models import NotificationRecipients
from shared.notifications.recipients import Audience, audiences


def _recipients(db, emails, events, *, customer=None, provider=None):
    db.add(NotificationRecipients(customer_id=customer.id if customer else None,
                                  service_provider_id=provider.id if provider else None,
                                  emails=emails, events=events))
    db.flush()


def test_nobody_set_means_only_the_operator(world, db):
    found = audiences(db, "failed", customer_id=world.customer.id, service_provider_id=world.provider.id,
                      operator="ops@operator.example")
    assert found == [Audience(("ops@operator.example",), password=False)]
    assert audiences(db, "failed", customer_id=world.customer.id, service_provider_id=world.provider.id) == []


def test_the_resellers_default_serves_customers_without_their_own_and_never_gets_the_password(world, db):
    _recipients(db, ["desk@reseller.example"], ["failed", "blocked"], provider=world.provider)
    args = {"customer_id": world.customer.id, "service_provider_id": world.provider.id}
    assert audiences(db, "blocked", **args) == [Audience(("desk@reseller.example",), password=False)]
    assert audiences(db, "provisioned", **args) == []  # not one of its events
    # A reseller-level request (no customer) goes to the reseller's default too.
    assert audiences(db, "failed", customer_id=None, service_provider_id=world.provider.id) == [
        Audience(("desk@reseller.example",), password=False)]


def test_the_customers_own_recipients_replace_the_default_and_may_get_the_password(world, db):
    _recipients(db, ["desk@reseller.example"], ["provisioned", "failed", "blocked"], provider=world.provider)
    _recipients(db, ["it@contoso.com", "boss@contoso.com"], ["provisioned"], customer=world.customer)
    args = {"customer_id": world.customer.id, "service_provider_id": world.provider.id}
    assert audiences(db, "provisioned", **args, operator="it@contoso.com") == [
        Audience(("it@contoso.com", "boss@contoso.com"), password=True)]  # the operator's address once
    assert audiences(db, "failed", **args, operator="ops@operator.example") == [
        Audience(("ops@operator.example",), password=False)]  # the customer chose: provisioned only
    other = world.b.customer(world.provider)
    assert audiences(db, "failed", customer_id=other.id, service_provider_id=world.provider.id) == [
        Audience(("desk@reseller.example",), password=False)]
