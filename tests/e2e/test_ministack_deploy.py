"""A real deploy: the CDK CLI deploys the stack to ministack (IAM enforced), `registryctl --stack`
issues the suite's access key (`test`/`test`, admin of registry 000000000000) into the deployed keys
table, the black-box suites (tests/api and tests/auth, those not marked local_only) run through the
emulated API Gateway -> Lambda -> DynamoDB/S3/KMS, signing for `ecr` as clients do, then `cdk destroy`.

The tests of this module run in order and share one deployment. Everything (emulator log, CLI
output, cloud assembly, the API suite's log and JUnit report, timings) is in cdk.out.e2e/.
"""

from __future__ import annotations

import hashlib
import json
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

pytestmark = pytest.mark.e2e
WORKDIR = ROOT / "cdk.out.e2e"
STACK = "ServerlessEcrRegistry"
SUITES = ("tests/api", "tests/auth")
# The key the suites sign with (tests/conftest.py, tests/auth/auth_support.py ADMIN).
SUITE_KEY = {"id": "test", "secret": "test", "registry": ACCOUNT, "grant": "admin"}
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
    context = {
        "registry:stackName": STACK,
        "registry:removalPolicy": "destroy",
        "registry:bundlePlatform": wheel_platform(),
        "registry:bundlePythonVersion": interpreter_version(emulator.venv),
        # precompiled by the very interpreter that runs the function there
        "registry:bytecodePython": str(emulator.venv / "bin" / "python"),
        # Nothing runs while the sweep is invoked here (and its hourly rule never fires in a
        # run this short), so it may reclaim what is seconds old.
        "registry:sweepGraceSeconds": "0",
    }
    context_args = [arg for key, value in context.items() for arg in ("-c", f"{key}={value}")]
    _record(
        "synth",
        run_cdk(["synth", "--quiet", "--output", str(assembly), *context_args], emulator=emulator, cwd=ROOT, log=log),
    )
    # From the work folder: no cdk.json there, so bootstrap does not synthesize the app again.
    _record("bootstrap", run_cdk(["bootstrap", f"aws://{ACCOUNT}/{REGION}"], emulator=emulator, cwd=WORKDIR, log=log))
    outputs_file = WORKDIR / "outputs.json"
    _record(
        "deploy",
        run_cdk(
            [
                "deploy",
                STACK,
                "--app",
                str(assembly),
                "--require-approval",
                "never",
                "--outputs-file",
                str(outputs_file),
            ],
            emulator=emulator,
            cwd=WORKDIR,
            log=log,
        ),
    )
    state = {"outputs": read_outputs(outputs_file, STACK), "destroyed": False, "assembly": assembly, "log": log}
    yield state
    if not state["destroyed"]:
        run_cdk(["destroy", STACK, "--app", str(assembly), "--force"], emulator=emulator, cwd=WORKDIR, log=log)


@pytest.fixture(scope="module")
def suite_key(deployment, emulator):
    """The suites' key, issued as an operator would: registryctl finds the table and KMS key from the
    stack's outputs and writes with the operator's (the emulator root's) credentials."""
    command = [
        sys.executable,
        "-m",
        "registryctl",
        "--stack",
        STACK,
        "--endpoint-url",
        emulator.endpoint,
        "--region",
        REGION,
        "--output",
        "json",
        "keys",
        "create",
        "--registry",
        SUITE_KEY["registry"],
        "--name",
        "e2e",
        "--grant",
        SUITE_KEY["grant"],
        "--access-key-id",
        SUITE_KEY["id"],
        "--secret-stdin",
    ]
    started = time.monotonic()
    result = subprocess.run(
        command,
        input=SUITE_KEY["secret"] + "\n",
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        env=emulator.tool_env(),
        timeout=120,
    )
    _record("seed_key", time.monotonic() - started)
    assert result.returncode == 0, f"registryctl failed:\n{result.stdout}\n{result.stderr}"
    return json.loads(result.stdout)


def test_deploys_within_budget(deployment):
    assert TIMINGS["deploy"] < DEPLOY_BUDGET_SECONDS, TIMINGS


def test_function_runs_the_deployed_configuration(deployment, emulator):
    """The emulator created what the template says (names wired through the environment)."""
    outputs = deployment["outputs"]
    function = emulator.boto3_client("lambda").get_function_configuration(FunctionName=outputs["FunctionName"])
    assert function["Handler"] == "registry.handler.lambda_handler"
    variables = function["Environment"]["Variables"]
    assert variables["REGISTRY_BUCKET"] == outputs["BucketName"]
    assert variables["POWERTOOLS_SERVICE_NAME"] == "ecr-registry"
    tables = set(emulator.boto3_client("dynamodb").list_tables()["TableNames"])
    assert {v for k, v in variables.items() if k.endswith("_TABLE")} <= tables
    # What registryctl --stack reads is what the function uses.
    assert variables["REGISTRY_KEYS_TABLE"] == outputs["KeysTableName"]
    assert variables["REGISTRY_KEYS_KMS_KEY"] == outputs["KeysKmsKeyArn"]
    assert variables["REGISTRY_KEY_CACHE_SECONDS"] == "60"
    sweep = emulator.boto3_client("lambda").get_function_configuration(FunctionName=outputs["SweepFunctionName"])
    assert sweep["Handler"] == "registry.sweep.handler.lambda_handler" and sweep["Timeout"] == 900
    assert sweep["Environment"]["Variables"]["REGISTRY_SWEEP_GRACE_SECONDS"] == "0"
    key = emulator.boto3_client("kms").describe_key(KeyId=outputs["KeysKmsKeyArn"])["KeyMetadata"]
    assert key["KeyState"] == "Enabled" and key["Description"] == "Encrypts the secrets of the registry's access keys"
    assert emulator.boto3_client("kms").get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"]


def test_registryctl_issues_the_suites_key_into_the_deployed_table(deployment, emulator, suite_key):
    assert suite_key["AccessKeyId"] == SUITE_KEY["id"] and suite_key["RegistryId"] == ACCOUNT
    assert suite_key["Principal"] == f"arn:aws:iam::{ACCOUNT}:user/e2e"
    item = emulator.boto3_client("dynamodb").get_item(
        TableName=deployment["outputs"]["KeysTableName"], Key={"access_key_id": {"S": SUITE_KEY["id"]}}
    )["Item"]
    assert item["status"] == {"S": "Active"} and "B" in item["secret_ciphertext"]
    assert SUITE_KEY["secret"].encode() not in item["secret_ciphertext"]["B"], "the secret is stored encrypted"


def test_black_box_suites_pass_through_api_gateway(deployment, emulator, suite_key):
    outputs = deployment["outputs"]
    stage = urlparse(outputs["EndpointUrl"]).path.strip("/")
    endpoint = emulator.invoke_url(outputs["RestApiId"], stage)
    log, report = WORKDIR / "api-tests.log", WORKDIR / "api-tests.xml"
    env = emulator.tool_env()
    env.pop("AWS_ENDPOINT_URL")  # the suites' clients name the registry endpoint themselves
    env["REGISTRY_ENDPOINT"] = endpoint
    started = time.monotonic()
    with open(log, "wb") as out:
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "pytest",
                *SUITES,
                "-q",
                "-p",
                "no:cacheprovider",
                "-o",
                "addopts=-ra",
                f"--junitxml={report}",
            ],
            check=False,
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=1200,
        )
    _record("suites", time.monotonic() - started)
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    if result.returncode != 0:
        _save_function_log(emulator, outputs["FunctionName"], WORKDIR / "function.log")
    assert result.returncode == 0, (
        f"{' and '.join(SUITES)} failed against {endpoint} (log: {log}, function "
        f"log: {WORKDIR / 'function.log'}):\n{tail}"
    )
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    ran = int(suite.get("tests")) - int(suite.get("skipped"))
    assert ran > 0 and int(suite.get("failures")) == 0 and int(suite.get("errors")) == 0, tail
    # Both suites ran through the deployment, not just collected: the signature tests among them.
    names = {case.get("classname", "") for case in suite.iter("testcase") if case.find("skipped") is None}
    for folder in SUITES:
        assert any(name.startswith(folder.replace("/", ".") + ".") for name in names), (folder, sorted(names)[:5])
    assert any(name == "tests.auth.test_authentication" for name in names)


def test_the_sweep_reclaims_an_abandoned_layer_with_its_own_role(deployment, emulator, suite_key):
    """The scheduled sweep, invoked as its rule does, under the role the stack gives it (IAM enforced):
    a layer uploaded and never used by an image is deleted with its blob entry and object."""
    import boto3
    from botocore.config import Config

    outputs = deployment["outputs"]
    endpoint = emulator.invoke_url(outputs["RestApiId"], urlparse(outputs["EndpointUrl"]).path.strip("/"))
    ecr = boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name=REGION,
        verify=str(emulator.ca_bundle),
        aws_access_key_id=SUITE_KEY["id"],
        aws_secret_access_key=SUITE_KEY["secret"],
        config=Config(retries={"max_attempts": 1}),
    )
    repository = "e2e-sweep"
    ecr.create_repository(repositoryName=repository)
    blob = b"abandoned layer " * 64
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    upload = ecr.initiate_layer_upload(repositoryName=repository)["uploadId"]
    ecr.upload_layer_part(
        repositoryName=repository, uploadId=upload, partFirstByte=0, partLastByte=len(blob) - 1, layerPartBlob=blob
    )
    ecr.complete_layer_upload(repositoryName=repository, uploadId=upload, layerDigests=[digest])

    def available() -> bool:
        found = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[digest])["layers"]
        return bool(found) and found[0]["layerAvailability"] == "AVAILABLE"

    s3 = emulator.boto3_client("s3")

    def blob_objects() -> list[str]:
        listed = s3.list_objects_v2(Bucket=outputs["BucketName"], Prefix="blobs/").get("Contents", [])
        return [o["Key"] for o in listed]

    # storage/layers.py: the blob object of a layer is blobs/<registry>/<scope>/<upload id>
    assert [key for key in blob_objects() if key.endswith("/" + upload)]
    started = time.monotonic()
    response = emulator.boto3_client("lambda").invoke(FunctionName=outputs["SweepFunctionName"], Payload=b"{}")
    _record("sweep", time.monotonic() - started)
    payload = json.loads(response["Payload"].read())
    if "FunctionError" in response:
        _save_function_log(emulator, outputs["SweepFunctionName"], WORKDIR / "sweep.log")
    assert "FunctionError" not in response, (payload, WORKDIR / "sweep.log")
    assert payload["complete"] is True and payload["dry_run"] is False, payload
    assert payload.get("layers_deleted", 0) >= 1 and payload.get("blobs_deleted", 0) >= 1, payload
    assert not available(), "the abandoned layer is gone"
    assert not [key for key in blob_objects() if key.endswith("/" + upload)], "and so is its blob object"
    ecr.delete_repository(repositoryName=repository, force=True)


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
    _record(
        "destroy",
        run_cdk(
            ["destroy", STACK, "--app", str(deployment["assembly"]), "--force"],
            emulator=emulator,
            cwd=WORKDIR,
            log=deployment["log"],
        ),
    )
    outputs = deployment["outputs"]
    assert not emulator.boto3_client("dynamodb").list_tables()["TableNames"]
    functions = emulator.boto3_client("lambda").list_functions()["Functions"]
    assert outputs["FunctionName"] not in {f["FunctionName"] for f in functions}
    # A test stack (removalPolicy destroy) schedules its KMS key for deletion, as AWS does.
    key = emulator.boto3_client("kms").describe_key(KeyId=outputs["KeysKmsKeyArn"])["KeyMetadata"]
    assert key["KeyState"] == "PendingDeletion"
    stacks = emulator.boto3_client("cloudformation").list_stacks()["StackSummaries"]
    assert {s["StackStatus"] for s in stacks if s["StackName"] == STACK} == {"DELETE_COMPLETE"}
