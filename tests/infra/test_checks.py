"""cdk-nag (every acknowledgment needed and explained), cfn-lint, and synth the way users run it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from stack_synth import ROOT

CDK_ENV = {
    "JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20",
    "CDK_DISABLE_CLI_TELEMETRY": "true",
    # offline: no credentials, no instance metadata to wait for
    "AWS_EC2_METADATA_DISABLED": "true",
}


def _offline_env() -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_"))}
    return {**env, **CDK_ENV}


# --- cdk-nag ---------------------------------------------------------------------------------------


def acknowledgments(stack) -> dict[tuple[str, str], str]:
    """(construct path, rule id) -> reason, for every acknowledgment in the stack."""
    from aws_cdk import Validations

    found = {}
    for construct in stack.node.find_all():
        for entry in construct.node.metadata:
            if entry.type == Validations.ACKNOWLEDGED_RULES_METADATA_KEY:
                for rule, reason in entry.data.items():
                    found[(construct.node.path, re.sub(r"^annotation::", "", rule, flags=re.IGNORECASE))] = reason
    return found


def test_nag_passes(synthesized):
    """The session synth runs AwsSolutionsChecks; a finding would have failed it."""
    report = json.loads((synthesized.outdir / "validation-report.json").read_text())
    failures = [r for r in report.get("pluginReports", []) if r.get("summary", {}).get("status") == "failure"]
    assert not failures


def test_every_acknowledgment_has_a_reason(synthesized):
    acks = acknowledgments(synthesized.stack)
    assert acks
    for (path, rule), reason in acks.items():
        assert rule.startswith("AwsSolutions-"), rule
        assert len(reason) >= 40, f"{rule} on {path}: say why"


def test_every_acknowledgment_is_needed(synthesized, tmp_path):
    """Without them, nag reports exactly the acknowledged findings, each under its acknowledging construct."""
    from stack_synth import SKIP_BUNDLING, synthesize

    with pytest.raises(Exception, match="ValidationFailed"):
        synthesize(SKIP_BUNDLING, outdir=tmp_path, acknowledge_findings=False)
    report = json.loads((tmp_path / "validation-report.json").read_text())
    findings = {
        (resource["constructPath"], violation["ruleName"])
        for plugin in report["pluginReports"]
        for violation in plugin["violations"]
        for resource in violation["violatingConstructs"]
    }
    acks = acknowledgments(synthesized.stack)

    def covered(path: str, rule: str) -> bool:
        return any(
            rule == ack_rule and (path == ack_path or path.startswith(ack_path + "/")) for ack_path, ack_rule in acks
        )

    assert {f for f in findings if not covered(*f)} == set(), "findings nobody acknowledged"
    unused = {(p, r) for p, r in acks if not any(r == rule and path.startswith(p) for path, rule in findings)}
    assert unused == set(), "acknowledgments of findings that no longer exist"


# --- cfn-lint --------------------------------------------------------------------------------------


def test_cfn_lint_reports_no_error(synthesized):
    cfn_lint = Path(sys.executable).with_name("cfn-lint")
    result = subprocess.run(
        [str(cfn_lint), "--non-zero-exit-code", "error", str(synthesized.template_path)],
        check=False,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The warnings left are CDK's own (W3005: the function's explicit DependsOn on its role policy).
    assert set(re.findall(r"^([EWI]\d{4})", result.stdout, flags=re.MULTILINE)) <= {"W3005"}, result.stdout


# --- synth as users run it -------------------------------------------------------------------------

# Both write to the session's output folder, so the bundled asset is reused (no second pip run).


def test_python_app_synthesizes(synthesized):
    template = synthesized.outdir / "ServerlessEcrRegistry.template.json"
    template.unlink()
    result = subprocess.run(
        [sys.executable, "app.py"],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**_offline_env(), "CDK_OUTDIR": str(synthesized.outdir)},
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _without_cdk_metadata(json.loads(template.read_text())) == _without_cdk_metadata(synthesized.template_json)


@pytest.mark.skipif(not (ROOT / "node_modules/.bin/cdk").exists(), reason="npm ci has not run")
def test_cdk_cli_synthesizes_offline_and_is_recent_enough(synthesized):
    template = synthesized.outdir / "ServerlessEcrRegistry.template.json"
    template.unlink()
    result = subprocess.run(
        ["npx", "--no-install", "cdk", "synth", "--quiet", "--no-notices", "--output", str(synthesized.outdir)],
        check=False,
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=_offline_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert _without_cdk_metadata(json.loads(template.read_text())) == _without_cdk_metadata(
        synthesized.template_json
    ), "the CLI and python app.py synthesize the same stack"
    manifest = json.loads((synthesized.outdir / "manifest.json").read_text())
    minimum = manifest.get("minimumCliVersion")
    installed = json.loads((ROOT / "node_modules/aws-cdk/package.json").read_text())["version"]
    pinned = json.loads((ROOT / "package.json").read_text())["devDependencies"]["aws-cdk"]
    assert pinned == installed, "package.json pins the CLI exactly"
    if minimum:
        assert _version(installed) >= _version(minimum), f"CLI {installed} < minimumCliVersion {minimum}"


def _without_cdk_metadata(template: dict) -> dict:
    """The CLI adds version reporting (AWS::CDK::Metadata and its condition) and construct paths and
    asset locations in each resource's Metadata, which also changes the hash in the logical id of the
    API Gateway deployment; nothing else may differ (the Lambda asset's hash aside)."""
    text = re.sub(r'"(\w*Deployment[0-9A-F]{8})[0-9a-f]{32}"', r'"\1"', json.dumps(template))
    # The asset hash follows lambdas/ sources: an edit during the test run must not fail it.
    template = json.loads(re.sub(r'"[0-9a-f]{64}\.zip"', '"<asset>.zip"', text))
    template["Resources"].pop("CDKMetadata", None)
    for resource in template["Resources"].values():
        metadata = {k: v for k, v in resource.pop("Metadata", {}).items() if not k.startswith("aws:")}
        if metadata:
            resource["Metadata"] = metadata
    template.get("Conditions", {}).pop("CDKMetadataAvailable", None)
    if not template.get("Conditions"):
        template.pop("Conditions", None)
    return template


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


def test_cdk_json_runs_the_venv_python():
    config = json.loads((ROOT / "cdk.json").read_text())
    command = config["app"].split()
    assert command[-1] == "app.py"
    assert (ROOT / command[0]).exists() or shutil.which(command[0])
