"""/v1/customers/{c}/notifications and the reseller's default at /v1/service-providers/{sp}/notifications."""
from __future__ import annotations

from typing import Any

from tests.api.conftest import Api, World, build_world, problem_of

ALL = ["provisioned", "failed", "blocked"]


def test_a_customer_uses_its_resellers_default_until_it_has_its_own(op: Api, world: World) -> None:
    c = f"/v1/customers/{world.customer_id}/notifications"
    sp = f"/v1/service-providers/{world.provider_id}/notifications"
    assert op.get(c).json() == {"emails": [], "events": [], "source": "none"}
    r = op.put(sp, json={"emails": ["desk@reseller.example"], "events": ["failed", "blocked"]})
    assert r.status_code == 200, r.text
    assert r.json() == {"emails": ["desk@reseller.example"], "events": ["failed", "blocked"],
                        "source": "service_provider"}
    assert op.get(c).json()["source"] == "service_provider"
    own = op.put(c, json={"emails": ["IT@contoso.com", "boss@contoso.com"], "events": ["blocked", "provisioned"]})
    assert own.status_code == 200, own.text
    assert own.json() == {"emails": ["it@contoso.com", "boss@contoso.com"], "events": ["provisioned", "blocked"],
                          "source": "customer"}
    assert op.get(c).json() == own.json()
    # Nobody at all is a choice too, not a fall-back to the reseller's.
    assert op.put(c, json={"emails": [], "events": ALL}).json() == {"emails": [], "events": ALL, "source": "customer"}
    back = op.delete(c)
    assert back.status_code == 200 and back.json()["source"] == "service_provider"
    assert op.get(sp).json()["emails"] == ["desk@reseller.example"]


def test_bad_recipients_are_refused_with_the_field_named(op: Api, world: World) -> None:
    c = f"/v1/customers/{world.customer_id}/notifications"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"emails": ["not an address"], "events": ALL}, "emails"),
        ({"emails": ["a@b.com"], "events": ["sent"]}, "events"),
        ({"emails": ["a@b.com", "A@b.com"], "events": ALL}, "emails"),
        ({"emails": ["a@b.com"], "events": ["failed", "failed"]}, "events"),
        ({"emails": ["a@b.com"]}, "events"),
    ]
    for body, field in cases:
        err = problem_of(op.put(c, json=body), 422, "validation_error")
        assert err["errors"][0]["loc"][:2] == ["body", field], (body, err)
    assert op.get(c).json()["source"] == "none"  # nothing was stored


def test_keys_see_their_own_and_only_managers_change_them(op: Api, raw: Any, world: World) -> None:
    c = f"/v1/customers/{world.customer_id}/notifications"
    body = {"emails": ["it@contoso.com"], "events": ALL}
    customer = Api(raw, world.customer_key)
    assert customer.get(c).status_code == 200
    problem_of(customer.put(c, json=body), 403, "forbidden")
    problem_of(customer.delete(c), 403, "forbidden")
    reseller = Api(raw, world.sp_key)
    assert reseller.put(c, json=body).status_code == 200
    assert reseller.put(f"/v1/service-providers/{world.provider_id}/notifications", json=body).status_code == 200
    other = build_world()
    problem_of(reseller.get(f"/v1/customers/{other.customer_id}/notifications"), 404, "not_found")
    problem_of(reseller.put(f"/v1/service-providers/{other.provider_id}/notifications", json=body), 404,
               "not_found")
