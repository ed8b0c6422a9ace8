"""template.yaml's Rules, as CloudFormation checks them before it creates anything, and the stage throttle."""

from __future__ import annotations

from typing import Any

import pytest

from localcloud.deploy import check_parameters
from localcloud.rules import RuleFailed, check_rules
from localcloud.template import load_template
from tests.integration.conftest import ROOT


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(ROOT / "template.yaml")


def test_the_defaults_pass_every_rule(template: dict[str, Any]) -> None:
    check_rules(template, {})


@pytest.mark.parametrize(("stage", "per_key"), [("100", "200"), ("10", "20"), ("500", "1000")])
def test_a_per_key_limit_over_the_stage_throttle_is_refused(template: dict[str, Any], stage: str, per_key: str) -> None:
    # The stage's throttle is every tenant's together: one key allowed more than all of them could never use it.
    given = {"ApiThrottleRate": stage, "RequestsPerSecond": per_key}
    check_parameters(template["Parameters"], given)
    with pytest.raises(RuleFailed, match="RequestsPerSecond must be at most ApiThrottleRate"):
        check_rules(template, given)


@pytest.mark.parametrize(("stage", "per_key"), [("100", "100"), ("1000", "1000"), ("10000", "500"), ("20", "5")])
def test_a_per_key_limit_within_the_stage_throttle_passes(template: dict[str, Any], stage: str, per_key: str) -> None:
    check_rules(template, {"ApiThrottleRate": stage, "RequestsPerSecond": per_key})


def test_the_stage_throttle_is_the_http_apis_default_route_setting(template: dict[str, Any]) -> None:
    settings = template["Resources"]["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "ApiThrottleRate"},
        "ThrottlingBurstLimit": {"Ref": "ApiThrottleBurst"},
    }


def test_the_local_cloud_refuses_to_deploy_what_the_rules_refuse() -> None:
    from localcloud import LocalCloud
    from localcloud.deploy import DeployError

    cloud = LocalCloud(port=0, parameters={"ApiThrottleRate": "50", "RequestsPerSecond": "100"})
    with pytest.raises(DeployError, match="RequestsPerSecond must be at most ApiThrottleRate"), cloud:
        pass
