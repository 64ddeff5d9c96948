"""A real deploy: the CDK CLI deploys the stack to ministack (IAM enforced), the black-box ECR suite
(tests/api) runs through the emulated API Gateway -> Lambda -> DynamoDB/S3, then `cdk destroy`.

The tests of this module run in order and share one deployment. Everything (emulator log, CLI
output, cloud assembly, the API suite's log and JUnit report, timings) is in cdk.out.e2e/.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlparse
from xml.etree import ElementTree

import pytest
from ministack_harness import (
    ACCOUNT,
    REGION,
    ROOT,
    Ministack,
    ensure_installed,
    interpreter_version,
    read_outputs,
    run_cdk,
    wheel_platform,
)

WORKDIR = ROOT / "cdk.out.e2e"
STACK = "ServerlessEcrRegistry"
DEPLOY_BUDGET_SECONDS = 120
TIMINGS: dict[str, float] = {}


def _record(name: str, seconds: float) -> None:
    TIMINGS[name] = round(seconds, 1)
    (WORKDIR / "timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")


@pytest.fixture(scope="module")
def emulator():
    if not (ROOT / "node_modules" / ".bin" / "cdk").exists():
        pytest.fail("the CDK CLI is missing: run `make install` (npm ci)")
    WORKDIR.mkdir(exist_ok=True)
    for leftover in WORKDIR.iterdir():  # keep assembly/: its bundled asset is reused while its inputs hold
        if leftover.name != "assembly":
            shutil.rmtree(leftover) if leftover.is_dir() else leftover.unlink()
    started = time.monotonic()
    venv = ensure_installed()
    _record("install_check", time.monotonic() - started)
    started = time.monotonic()
    instance = Ministack(WORKDIR, venv=venv).start()
    _record("ministack_start", time.monotonic() - started)
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def deployment(emulator):
    """Synthesize once (bundled for the emulator's interpreter), bootstrap, deploy; destroy at the end."""
    assembly, log = WORKDIR / "assembly", WORKDIR / "cdk.log"
    context = {"registry:stackName": STACK, "registry:removalPolicy": "destroy",
               "registry:bundlePlatform": wheel_platform(),
               "registry:bundlePythonVersion": interpreter_version(emulator.venv)}
    context_args = [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]
    _record("synth", run_cdk(["synth", "--quiet", "--output", str(assembly), *context_args],
                             emulator=emulator, cwd=ROOT, log=log))
    # From the work folder: no cdk.json there, so bootstrap does not synthesize the app again.
    _record("bootstrap", run_cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], emulator=emulator,
                                 cwd=WORKDIR, log=log))
    outputs_file = WORKDIR / "outputs.json"
    _record("deploy", run_cdk(["deploy", STACK, "--app", str(assembly), "--require-approval", "never",
                               "--outputs-file", str(outputs_file)], emulator=emulator, cwd=WORKDIR, log=log))
    state = {"outputs": read_outputs(outputs_file, STACK), "destroyed": False, "assembly": assembly, "log": log}
    yield state
    if not state["destroyed"]:
        run_cdk(["destroy", STACK, "--app", str(assembly), "--force"], emulator=emulator, cwd=WORKDIR, log=log)


def test_deploys_within_budget(deployment):
    assert TIMINGS["deploy"] < DEPLOY_BUDGET_SECONDS, TIMINGS


def test_function_runs_the_deployed_configuration(deployment, emulator):
    """The emulator created what the template says (names wired through the environment)."""
    outputs = deployment["outputs"]
    function = emulator.boto3_client("lambda").get_function_configuration(FunctionName=outputs["FunctionName"])
    assert function["Handler"] == "registry.handler.lambda_handler"
    variables = function["Environment"]["Variables"]
    assert variables["REGISTRY_BUCKET"] == outputs["BucketName"]
    assert variables["REGISTRY_ID"] == ACCOUNT
    tables = set(emulator.boto3_client("dynamodb").list_tables()["TableNames"])
    assert {v for k, v in variables.items() if k.endswith("_TABLE")} <= tables


def test_black_box_ecr_suite_passes_through_api_gateway(deployment, emulator):
    outputs = deployment["outputs"]
    stage = urlparse(outputs["EndpointUrl"]).path.strip("/")
    endpoint = emulator.invoke_url(outputs["RestApiId"], stage)
    log, report = WORKDIR / "api-tests.log", WORKDIR / "api-tests.xml"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
    env.update(emulator.client_env())
    env.pop("AWS_ENDPOINT_URL")  # the suite's clients name the registry endpoint themselves
    env["REGISTRY_ENDPOINT"] = endpoint
    started = time.monotonic()
    with open(log, "wb") as out:
        result = subprocess.run([sys.executable, "-m", "pytest", "tests/api", "-q", "-p", "no:cacheprovider",
                                 "-o", "addopts=", f"--junitxml={report}"],
                                check=False, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                timeout=1200)
    _record("api_suite", time.monotonic() - started)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    if result.returncode != 0:
        _save_function_log(emulator, outputs["FunctionName"], WORKDIR / "function.log")
    assert result.returncode == 0, f"tests/api failed against {endpoint} (log: {log}, function log: " \
                                   f"{WORKDIR / 'function.log'}):\n{tail}"
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    ran = int(suite.get("tests")) - int(suite.get("skipped"))
    assert ran > 0 and int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0, tail


def _save_function_log(emulator, function_name: str, path: Path) -> None:
    """The function's own log (Powertools JSON lines: faults with their stack traces)."""
    try:
        config = emulator.boto3_client("lambda").get_function_configuration(FunctionName=function_name)
        group = config.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{function_name}"
        events = emulator.boto3_client("logs").filter_log_events(logGroupName=group, limit=10_000)["events"]
        path.write_text("\n".join(e["message"].rstrip() for e in events) + "\n")
    except Exception as error:  # noqa: BLE001 - diagnostics only
        path.write_text(f"could not read the function's log: {error!r}\n")


def test_destroy_removes_the_stack(deployment, emulator):
    deployment["destroyed"] = True
    _record("destroy", run_cdk(["destroy", STACK, "--app", str(deployment["assembly"]), "--force"],
                               emulator=emulator, cwd=WORKDIR, log=deployment["log"]))
    outputs = deployment["outputs"]
    assert not emulator.boto3_client("dynamodb").list_tables()["TableNames"]
    functions = emulator.boto3_client("lambda").list_functions()["Functions"]
    assert outputs["FunctionName"] not in {f["FunctionName"] for f in functions}
    stacks = emulator.boto3_client("cloudformation").list_stacks()["StackSummaries"]
    assert {s["StackStatus"] for s in stacks if s["StackName"] == STACK} == {"DELETE_COMPLETE"}
