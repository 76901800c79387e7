"""What makes a user acceptable to Entra: UPN syntax, name lengths, usage location, alias addresses."""
from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

# Entra's limits: 64 characters before the "@", 48 after, 113 in all.
UPN_LOCAL_MAX, UPN_DOMAIN_MAX, UPN_MAX = 64, 48, 113
NAME_MAX = 64
DISPLAY_NAME_MAX = 256
ALIASES_MAX = 100
# Characters Entra accepts before the "@" of a UPN.
_UPN_LOCAL = re.compile(r"^[a-z0-9'._!#^~-]+$")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

# ISO 3166-1 alpha-2, every officially assigned code (Microsoft's usage locations are this list).
_ISO_3166_ALPHA2 = """
AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO BQ BR BS BT BV BW BY
BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK
FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR
IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK
ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM
PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF
TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
COUNTRIES = frozenset(_ISO_3166_ALPHA2.split())


def domain_ok(domain: str) -> bool:
    labels = domain.split(".")
    return (len(labels) >= 2 and all(_LABEL.match(label) for label in labels) and bool(_TLD.match(labels[-1])))


def normalise_upn(value: str) -> str:
    """The lower-cased UPN, or ValueError saying what is wrong with it."""
    upn = value.strip().lower()
    if upn.count("@") != 1:
        raise ValueError("a UPN is local-part@domain with exactly one @")
    local, domain = upn.split("@")
    if not local or len(local) > UPN_LOCAL_MAX:
        raise ValueError(f"the part before @ must be 1 to {UPN_LOCAL_MAX} characters")
    if not _UPN_LOCAL.match(local):
        raise ValueError("the part before @ may hold only letters, digits and ' . - _ ! # ^ ~")
    if local.startswith(".") or local.endswith(".") or ".." in local:
        raise ValueError("the part before @ may not start or end with a dot, nor hold two in a row")
    if len(domain) > UPN_DOMAIN_MAX or not domain_ok(domain):
        raise ValueError(f"the domain must be a valid DNS name of at most {UPN_DOMAIN_MAX} characters")
    if len(upn) > UPN_MAX:
        raise ValueError(f"a UPN is at most {UPN_MAX} characters")
    return upn


def normalise_alias(value: str) -> str:
    """A lower-cased SMTP address, or ValueError."""
    try:
        info = validate_email(value.strip(), check_deliverability=False, allow_smtputf8=False,
                              allow_quoted_local=False, allow_domain_literal=False)
    except EmailNotValidError as exc:
        raise ValueError(f"not a valid email address: {exc}") from None
    address = info.normalized.lower()
    if not domain_ok(address.rsplit("@", 1)[1]):
        raise ValueError("the domain is not a valid DNS name")
    return address


def normalise_country(value: str) -> str:
    code = value.strip().upper()
    if code not in COUNTRIES:
        raise ValueError("must be an ISO 3166-1 alpha-2 country code, such as GB or US")
    return code


def normalise_name(value: str) -> str:
    name = value.strip()
    if _CONTROL.search(name):
        raise ValueError("may not contain control characters")
    return name
