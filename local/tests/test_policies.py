"""Every IAM policy of the template grants what it says: parliament (a policy linter) finds
nothing in it that local/policy-findings.yaml does not accept with a reason."""

from __future__ import annotations

import json

import yaml
from parliament import analyze_policy_string

from local.policies import inline_policies
from local.template import ROOT, Template

ACCEPTED = yaml.safe_load((ROOT / "local" / "policy-findings.yaml").read_text())["accepted"] or []


def findings(policy: str) -> list[tuple[str, str]]:
    analysis = analyze_policy_string(policy, include_community_auditors=True)
    return [(finding.issue, json.dumps(finding.detail, default=str)) for finding in analysis.findings]


def test_every_policy_is_clean_or_its_findings_are_accepted():
    accepted = {(entry["policy"], entry["issue"]) for entry in ACCEPTED}
    policies = inline_policies(Template.load())
    assert set(policies) == {
        "CreateUserRole/create-user", "DeleteUserRole/delete-user", "GetUserRole/get-user",
        "UpdateUserRole/update-user", "UserHistoryRole/user-history", "UserStreamRole/user-stream",
        "WelcomeUserRole/welcome-user",
    }
    seen = set()
    for name, policy in policies.items():
        for issue, detail in findings(policy):
            seen.add((name, issue))
            assert (name, issue) in accepted, f"{name}: {issue} {detail}\n{policy}"
    assert accepted <= seen, f"accepted findings that no longer occur: {accepted - seen}"
    for entry in ACCEPTED:
        assert len(entry.get("reason", "").strip()) > 20, entry


def test_the_linter_catches_a_statement_that_grants_nothing():
    # The mistake this guards against: ListStreams has no resource type, so naming a stream
    # ARN grants nothing.
    policy = {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow",
            "Action": "dynamodb:ListStreams",
            "Resource": "arn:aws:dynamodb:us-east-1:123456789012:table/UsersTable/stream/*",
        }],
    }
    assert [issue for issue, _ in findings(json.dumps(policy))] == ["RESOURCE_MISMATCH"]


def test_policies_are_rendered_with_real_arn_shapes():
    stream = json.loads(inline_policies(Template.load())["UserStreamRole/user-stream"])
    resources = [statement["Resource"] for statement in stream["Statement"]]
    assert "arn:aws:dynamodb:us-east-1:123456789012:table/UsersTable/stream/2026-11-22T00-00-00.000" in resources
    assert "arn:aws:dynamodb:us-east-1:123456789012:table/HistoryTable" in resources
    assert "*" in resources
