"""Users: validation of every field, unique UPN per customer, lists with filters and paging."""
from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api, World, problem_of, user_body


def test_create_normalises_and_reads_back(op: Api, world: World) -> None:
    r = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body(
        "Ada.Lovelace@Contoso.COM", usage_location="GB", aliases=["Countess@Contoso.com", "ada.lovelace@contoso.com"],
        first_name="  Ada "))
    assert r.status_code == 201, r.text
    user = r.json()
    assert user["upn"] == "ada.lovelace@contoso.com" and user["usage_location"] == "GB"
    assert user["aliases"] == ["countess@contoso.com"] and user["first_name"] == "Ada"
    assert user["display_name"] == "Ada Lovelace" and user["microsoft_online"] is None
    assert op.get(f"/v1/users/{user['id']}").json() == user


def test_upn_unique_per_customer(op: Api, world: World, make_world: Any) -> None:
    body = user_body("same@contoso.com")
    assert op.post(f"/v1/customers/{world.customer_id}/users", json=body).status_code == 201
    problem_of(op.post(f"/v1/customers/{world.customer_id}/users", json={**body, "upn": "SAME@contoso.com"}),
               409, "upn_conflict")
    other = make_world()
    assert op.post(f"/v1/customers/{other.customer_id}/users", json=body).status_code == 201


@pytest.mark.parametrize("field,value", [
    ("upn", "no-at-sign"), ("upn", "two@@contoso.com"), ("upn", "a b@contoso.com"), ("upn", ".dot@contoso.com"),
    ("upn", "x@localhost"), ("upn", "x@-bad-.com"), ("upn", "a" * 65 + "@contoso.com"),
    ("upn", "a@" + "b" * 45 + ".com"), ("first_name", ""), ("first_name", "x" * 65), ("last_name", None),
    ("display_name", "y" * 257), ("usage_location", "XX"), ("usage_location", "GBR"), ("usage_location", "UK"),
    ("usage_location", "gb"),
    ("aliases", ["not-an-address"]), ("aliases", "a@b.com"), ("aliases", ["a@b.com"] * 101),
])
def test_invalid_fields_are_422_naming_the_field(op: Api, world: World, field: str, value: Any) -> None:
    r = op.post(f"/v1/customers/{world.customer_id}/users", json=user_body(**{field: value}))
    err = problem_of(r, 422, "validation_error")
    assert any(e["loc"][:2] == ["body", field] for e in err["errors"]), err


def test_list_filters_and_pages(op: Api, world: World) -> None:
    c = world.customer_id
    for i in range(5):
        op.post(f"/v1/customers/{c}/users", json=user_body(f"p{i}@contoso.com"))
    op.post(f"/v1/customers/{c}/users", json=user_body("other@contoso.com"))
    prov = op.get(f"/v1/customers/{c}/users", params={"upn": "p"}).json()["items"]
    assert [u["upn"] for u in prov] == [f"p{i}@contoso.com" for i in range(5)]
    op.put(f"/v1/users/{prov[0]['id']}/services/microsoft-online", json={"user_plan_id": world.user_plan_id})
    provisioning = op.get(f"/v1/customers/{c}/users", params={"service_state": "provisioning"}).json()["items"]
    assert [u["upn"] for u in provisioning] == ["p0@contoso.com"]
    assert provisioning[0]["microsoft_online"]["user_plan_id"] == world.user_plan_id
    by_plan = op.get(f"/v1/customers/{c}/users", params={"user_plan_id": world.user_plan_id}).json()["items"]
    assert [u["upn"] for u in by_plan] == ["p0@contoso.com"]
    upns, cursor = [], None
    while True:
        page = op.get(f"/v1/customers/{c}/users", params={"limit": 4, **({"cursor": cursor} if cursor else {})})
        upns += [u["upn"] for u in page.json()["items"]]
        cursor = page.json()["next_cursor"]
        if not cursor:
            break
    assert upns == sorted(upns) and len(upns) == 6
    problem_of(op.get(f"/v1/customers/{c}/users", params={"limit": 0}), 422, "validation_error")
    problem_of(op.get(f"/v1/customers/{c}/users", params={"limit": 100000}), 422, "validation_error")
