"""User field rules: UPN syntax and limits, ISO 3166 usage locations, alias addresses, names."""
from __future__ import annotations

from pathlib import Path

import pytest

from shared.users import validation as v


@pytest.mark.parametrize("upn,expected", [
    ("Ada@Contoso.COM", "ada@contoso.com"), ("o'brien@contoso.com", "o'brien@contoso.com"),
    ("a.b-c_d!#^~@sub.contoso.co.uk", "a.b-c_d!#^~@sub.contoso.co.uk"), ("x@xn--bcher-kva.example", None),
    (" spaced@contoso.com ", "spaced@contoso.com"),
])
def test_good_upns(upn: str, expected: str | None) -> None:
    assert v.normalise_upn(upn) == (expected or upn.strip().lower())


@pytest.mark.parametrize("upn", [
    "plain", "a@@b.com", "@contoso.com", "a@", "a b@contoso.com", ".a@contoso.com", "a.@contoso.com",
    "a..b@contoso.com", "a@contoso", "a@-contoso.com", "a@contoso-.com", "a@contoso.c0m", "a+b@contoso.com",
    "a" * 65 + "@contoso.com", "a@" + "b" * 46 + ".com", "ä@contoso.com",
])
def test_bad_upns(upn: str) -> None:
    with pytest.raises(ValueError):
        v.normalise_upn(upn)


def test_country_list_is_iso_3166_1_alpha_2() -> None:
    tab = Path("/usr/share/zoneinfo/iso3166.tab")
    if not tab.exists():
        pytest.skip("no tzdata iso3166.tab to compare with")
    codes = {line.split("\t")[0] for line in tab.read_text().splitlines() if line and not line.startswith("#")}
    assert codes == v.COUNTRIES and len(v.COUNTRIES) == 249


def test_countries_and_names() -> None:
    assert v.normalise_country("gb") == "GB"
    for bad in ("UK", "XX", "GBR", ""):
        with pytest.raises(ValueError):
            v.normalise_country(bad)
    assert v.normalise_name("  Ada ") == "Ada"
    with pytest.raises(ValueError):
        v.normalise_name("A\x00da")


def test_aliases() -> None:
    assert v.normalise_alias("Countess@Smoke.Example") == "countess@smoke.example"
    for bad in ("nope", "a@b", "a@localhost", "a b@c.com", "a@c..com"):
        with pytest.raises(ValueError):
            v.normalise_alias(bad)
