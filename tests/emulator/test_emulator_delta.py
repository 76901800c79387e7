"""users/delta: a full pass in pages, then only changes (including Entra-side ones), then an expired token."""
from __future__ import annotations

from typing import Any

import httpx

from .emulator_world import World, new_user


def _drain(graph: httpx.Client, url: str, **params: str) -> tuple[list[dict[str, Any]], str]:
    page = graph.get(url, params=params or None).json()
    items = list(page["value"])
    while "@odata.nextLink" in page:
        assert "@odata.deltaLink" not in page
        page = graph.get(page["@odata.nextLink"]).json()
        items += page["value"]
    return items, page["@odata.deltaLink"]


def test_full_then_incremental_then_expired(world: World) -> None:
    control = world.control()
    control.post(f"/_emulator/tenants/{world.tenant_id}/users:generate", json={"count": 12})
    graph = world.graph()
    full, delta_link = _drain(graph, "/v1.0/users/delta", **{"$select": "id,userPrincipalName,jobTitle"})
    assert len(full) == 13 and len({u["id"] for u in full}) == 13
    assert set(full[0]) == {"id", "userPrincipalName", "jobTitle"}

    quiet, delta_link = _drain(graph, delta_link)
    assert quiet == []

    created = graph.post("/v1.0/users", json=new_user("fresh@contoso.com")).json()
    changed = full[1]["id"]
    control.patch(f"/_emulator/tenants/{world.tenant_id}/users/{changed}", json={"jobTitle": "Chief"})
    removed = full[2]["id"]
    control.delete(f"/_emulator/tenants/{world.tenant_id}/users/{removed}")
    changes, delta_link = _drain(graph, delta_link)
    by_id = {item["id"]: item for item in changes}
    assert set(by_id) == {created["id"], changed, removed}
    assert by_id[changed]["jobTitle"] == "Chief"
    assert by_id[removed]["@removed"] == {"reason": "changed"}
    assert set(by_id[changed]) == {"id", "userPrincipalName", "jobTitle"}  # the round kept its $select

    control.post("/_emulator/delta/expire")
    expired = graph.get(delta_link)
    assert expired.status_code == 410
    assert expired.json()["error"]["code"] == "syncStateNotFound"
    assert expired.headers["Location"].endswith("/v1.0/users/delta")
    assert graph.get("/v1.0/users/delta", params={"$deltatoken": "made-up"}).status_code == 410


def test_delta_pages_follow_prefer_maxpagesize(world: World) -> None:
    world.control().post(f"/_emulator/tenants/{world.tenant_id}/users:generate", json={"count": 9})
    graph = world.graph()
    first = graph.get("/v1.0/users/delta", headers={"Prefer": "odata.maxpagesize=4"}).json()
    assert len(first["value"]) == 4 and "@odata.nextLink" in first


def test_latest_token_skips_the_full_pass(world: World) -> None:
    graph = world.graph()
    latest = graph.get("/v1.0/users/delta", params={"$deltatoken": "latest"}).json()
    assert latest["value"] == []
    graph.post("/v1.0/users", json=new_user("after@contoso.com"))
    changes, _ = _drain(graph, latest["@odata.deltaLink"])
    assert [u["userPrincipalName"] for u in changes] == ["after@contoso.com"]
