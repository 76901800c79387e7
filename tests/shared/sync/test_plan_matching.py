"""PlanMatcher: the plan sharing most SKUs with the user's licences; ties go to the plan with fewer extras."""
from __future__ import annotations

from shared.sync.plan_matching import PlanMatcher

MATCHER = PlanMatcher([
    ("p-basic", "Basic", ["O365_BUSINESS_ESSENTIALS"]),
    ("p-basic-plus", "Basic plus", ["O365_BUSINESS_ESSENTIALS", "POWER_BI_STANDARD", "VISIOCLIENT"]),
    ("p-premium", "Premium", ["O365_BUSINESS_PREMIUM", "POWER_BI_STANDARD"]),
    ("p-premium-2", "Another premium", ["O365_BUSINESS_PREMIUM", "POWER_BI_STANDARD"]),
])


def test_most_skus_in_common_wins():
    assert MATCHER.match(["O365_BUSINESS_ESSENTIALS", "POWER_BI_STANDARD"]) == "p-basic-plus"


def test_a_tie_goes_to_the_plan_with_fewest_skus_the_user_lacks():
    assert MATCHER.match(["O365_BUSINESS_ESSENTIALS"]) == "p-basic"


def test_a_full_tie_is_decided_by_plan_name_and_case_does_not_matter():
    assert MATCHER.match(["o365_business_premium", "power_bi_standard"]) == "p-premium-2"


def test_no_sku_in_common_or_no_licence_means_no_plan():
    assert MATCHER.match(["EMS"]) is None
    assert MATCHER.match([]) is None
    assert PlanMatcher([]).match(["O365_BUSINESS_ESSENTIALS"]) is None
