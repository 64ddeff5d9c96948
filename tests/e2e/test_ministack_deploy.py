"""A real deploy: the CDK CLI deploys the stack to ministack (IAM enforced), `registryctl --stack`
issues the suite's access key (`test`/`test`, admin of registry 000000000000) into the deployed keys
table, the black-box suites (tests/api, tests/auth and the /v2 suite tests/oci/test_distribution_api.py,
those not marked local_only) run through the emulated API Gateway -> Lambda -> DynamoDB/S3/KMS,
signing for `ecr` or logging in with Basic as clients do; the /v2 workflows of docker run here too,
by raw HTTP, through the /v2 routes, their authorizer and gateway responses; the deployed sweep
reclaims an abandoned layer and applies a lifecycle policy, logging the usage it measured; then
`cdk destroy`.

The function is told its URL (REGISTRY_PUBLIC_URL, what registry:domainName sets): the emulator's
invoke URL, `https://127.0.0.1:<port>/_aws/execute-api/<api>/<stage>`, is not a URL that AWS has,
and the function cannot rebuild it from its event (path `/<stage>/...`, Host 127.0.0.1:<port>):
left to itself it would name `https://127.0.0.1:<port>/<stage>` in GetAuthorizationToken's
proxyEndpoint and in the absolute URLs of /v2 (upload locations, pages), which lead nowhere there.
On AWS the same derivation gives the stage's URL (Host <api>.execute-api.<region>.amazonaws.com).

What ministack 1.5.33 does of the /v2 wiring (seen here; cdk.out.e2e/v2-observed.json):
- the REQUEST authorizer runs (the function, as `type: REQUEST`), its answer is cached, and the
  UNAUTHORIZED gateway response is applied with its static headers (the realm resolved by CloudFormation);
- binary media types: a body of application/octet-stream reaches the function base64-encoded, byte for
  byte; a body WITHOUT Content-Type arrives as text (invalid UTF-8 replaced): AWS takes it for
  application/json, one of the binary types. docker's PATCH has none: sent here with UTF-8 bytes only;
- no payload limit (neither API Gateway's 10 MB nor Lambda's 6 MB): REQUEST_TOO_LARGE never happens;
- a function's WWW-Authenticate and Content-Length pass unrenamed (AWS renames them), and the
  Transfer-Encoding of a chunked request reaches the function (AWS drops it).

The tests of this module run in order and share one deployment. Everything (emulator log, CLI
output, cloud assembly, the API suite's log and JUnit report, timings) is in cdk.out.e2e/.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import ssl
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
from oci.distribution import Client, sha256
from support import DOCKER_MANIFEST, image_manifest, new_blobs, upload_image_blobs

from registry.config import PUBLIC_URL_ENV
from registry.distribution.http import API_VERSION, challenge
from registry.sweep.usage import (
    IMAGE_COUNT_METRIC,
    REGISTRY_DIMENSION,
    REPOSITORY_COUNT_METRIC,
    REPOSITORY_DIMENSION,
    STORED_BYTES_METRIC,
)

pytestmark = pytest.mark.e2e
WORKDIR = ROOT / "cdk.out.e2e"
STACK = "ServerlessEcrRegistry"
SUITES = ("tests/api", "tests/auth", "tests/oci/test_distribution_api.py")
# The key the suites sign with (tests/conftest.py, tests/auth/auth_support.py ADMIN).
SUITE_KEY = {"id": "test", "secret": "test", "registry": ACCOUNT, "grant": "admin"}
DEPLOY_BUDGET_SECONDS = 120
TIMINGS: dict[str, float] = {}
OBSERVED: dict[str, object] = {}  # what the emulator did of the /v2 wiring (see the module's docstring)


def _record(name: str, seconds: float) -> None:
    TIMINGS[name] = round(seconds, 1)
    (WORKDIR / "timings.json").write_text(json.dumps(TIMINGS, indent=2) + "\n")


def _observe(name: str, what: object) -> None:
    OBSERVED[name] = what
    (WORKDIR / "v2-observed.json").write_text(json.dumps(OBSERVED, indent=2) + "\n")


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


@pytest.fixture(scope="module")
def registry_endpoint(deployment, emulator, suite_key):
    """The stage's invoke URL on the emulator, which the function is told is its URL (the module's
    docstring says why); what the function made of the path-style URL on its own is recorded first."""
    outputs = deployment["outputs"]
    endpoint = emulator.invoke_url(outputs["RestApiId"], urlparse(outputs["EndpointUrl"]).path.strip("/"))
    (data,) = _ecr(emulator, endpoint).get_authorization_token()["authorizationData"]
    _observe("proxyEndpoint_before_REGISTRY_PUBLIC_URL", data["proxyEndpoint"])
    functions = emulator.boto3_client("lambda")
    variables = functions.get_function_configuration(FunctionName=outputs["FunctionName"])["Environment"]["Variables"]
    functions.update_function_configuration(
        FunctionName=outputs["FunctionName"], Environment={"Variables": {**variables, PUBLIC_URL_ENV: endpoint}}
    )
    functions.get_waiter("function_updated_v2").wait(FunctionName=outputs["FunctionName"])
    return endpoint


def _ecr(emulator, endpoint: str):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "ecr",
        endpoint_url=endpoint,
        region_name=REGION,
        verify=str(emulator.ca_bundle),
        aws_access_key_id=SUITE_KEY["id"],
        aws_secret_access_key=SUITE_KEY["secret"],
        config=Config(retries={"max_attempts": 1}),
    )


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


def test_the_api_serves_v2_behind_the_authorizer_with_the_oci_gateway_responses(deployment, emulator):
    """What CloudFormation created of the /v2 wiring on the emulator (the template: tests/infra)."""
    outputs = deployment["outputs"]
    apis = emulator.boto3_client("apigateway")
    api = apis.get_rest_api(restApiId=outputs["RestApiId"])
    assert api["binaryMediaTypes"] == ["application/octet-stream", "application/json"]
    (authorizer,) = apis.get_authorizers(restApiId=outputs["RestApiId"])["items"]
    assert authorizer["type"] == "REQUEST"
    assert authorizer["identitySource"] == "method.request.header.Authorization"
    assert authorizer["authorizerUri"].endswith(f":function:{outputs['FunctionName']}/invocations")
    routes = {r["path"]: r for r in apis.get_resources(restApiId=outputs["RestApiId"], embed=["methods"])["items"]}
    assert set(routes) == {"/", "/v2", "/v2/{proxy+}"}
    for path in ("/v2", "/v2/{proxy+}"):
        method = apis.get_method(restApiId=outputs["RestApiId"], resourceId=routes[path]["id"], httpMethod="ANY")
        assert method["authorizationType"] == "CUSTOM" and method["authorizerId"] == authorizer["id"], path
    responses = {
        r["responseType"]: r
        for r in apis.get_gateway_responses(restApiId=outputs["RestApiId"])["items"]
        if not r.get("defaultResponse")
    }
    assert {"UNAUTHORIZED", "ACCESS_DENIED", "REQUEST_TOO_LARGE", "BAD_REQUEST_PARAMETERS"} <= set(responses)
    challenge_header = responses["UNAUTHORIZED"]["responseParameters"]["gatewayresponse.header.WWW-Authenticate"]
    assert challenge_header == f"'{challenge(outputs['EndpointUrl'])}'", "the realm as CloudFormation resolved it"


def test_registryctl_issues_the_suites_key_into_the_deployed_table(deployment, emulator, suite_key):
    assert suite_key["AccessKeyId"] == SUITE_KEY["id"] and suite_key["RegistryId"] == ACCOUNT
    assert suite_key["Principal"] == f"arn:aws:iam::{ACCOUNT}:user/e2e"
    item = emulator.boto3_client("dynamodb").get_item(
        TableName=deployment["outputs"]["KeysTableName"], Key={"access_key_id": {"S": SUITE_KEY["id"]}}
    )["Item"]
    assert item["status"] == {"S": "Active"} and "B" in item["secret_ciphertext"]
    assert SUITE_KEY["secret"].encode() not in item["secret_ciphertext"]["B"], "the secret is stored encrypted"


def test_black_box_suites_pass_through_api_gateway(deployment, emulator, registry_endpoint):
    outputs = deployment["outputs"]
    endpoint = registry_endpoint
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
        prefix = folder.removesuffix(".py").replace("/", ".")
        assert any(name == prefix or name.startswith(prefix + ".") for name in names), (folder, sorted(names)[:5])
    assert any(name == "tests.auth.test_authentication" for name in names)


def test_v2_refuses_without_a_login_with_the_gateways_challenge(deployment, emulator, registry_endpoint):
    """No login: API Gateway answers (its UNAUTHORIZED response) without calling the authorizer, with
    the challenge whose realm is the stack's URL as CloudFormation resolved it (EndpointUrl). A bad
    login: the authorizer (the function, as `type: REQUEST`) denies it, and API Gateway answers with
    its ACCESS_DENIED response (403 DENIED)."""
    context = ssl.create_default_context(cafile=str(emulator.ca_bundle))
    expected = challenge(deployment["outputs"]["EndpointUrl"])
    bad = "Basic " + base64.b64encode(b"AWS:not-a-token").decode()
    seen = {}
    for case, authorization, status, code in (
        ("no login", None, 401, "UNAUTHORIZED"),
        ("bad login", bad, 403, "DENIED"),
    ):
        answer = Client(registry_endpoint, authorization, ssl_context=context).request("GET", "/v2/")
        seen[case] = {"status": answer.status, "headers": answer.headers, "body": answer.body.decode()}
        assert answer.status == status and answer.error_code == code, (case, answer)
        if status == 401:  # the gateway's answer, not the function's: the function's would name the invoke URL
            assert answer.header("www-authenticate") == expected, (case, answer.headers)
        for name, value in API_VERSION.items():
            assert answer.header(name) == value
        assert answer.header("content-type") == "application/json"
    _observe("unauthenticated", seen)


def test_v2_workflows_of_docker_through_api_gateway(deployment, emulator, registry_endpoint):
    """docker login's token from the deployed ECR API, then a push (POST, one PATCH, PUT ?digest=, the
    manifest), a pull (the manifest byte for byte, the blob from S3 after the 307) and tags/list."""
    ecr = _ecr(emulator, registry_endpoint)
    repository = "e2e-v2"
    ecr.create_repository(repositoryName=repository)
    (data,) = ecr.get_authorization_token()["authorizationData"]
    assert data["proxyEndpoint"] == registry_endpoint
    context = ssl.create_default_context(cafile=str(emulator.ca_bundle))
    v2 = Client(registry_endpoint, f"Basic {data['authorizationToken']}", ssl_context=context)
    assert v2.request("GET", "/v2/").status == 200

    def push(blob: bytes, content_type: str | None) -> str:
        started = v2.request("POST", f"/v2/{repository}/blobs/uploads/")
        assert started.status == 202, started
        headers = {"Content-Type": content_type} if content_type else {}
        patched = v2.request("PATCH", started.header("location"), body=blob, chunked=True, headers=headers)
        assert patched.status == 202 and patched.header("range") == f"0-{len(blob) - 1}", patched
        done = v2.request("PUT", f"{patched.header('location')}?digest={sha256(blob)}")
        assert done.status == 201 and done.header("docker-content-digest") == sha256(blob), done
        return sha256(blob)

    # docker's PATCH: no Content-Type (UTF-8 bytes: the emulator hands such a body over as text)
    config = json.dumps({"architecture": "amd64", "os": "linux", "nonce": os.urandom(8).hex()}).encode()
    push(config, None)
    # Layer bytes as skopeo sends them: application/octet-stream, a binary media type, byte for byte
    layer = os.urandom(300_000)
    push(layer, "application/octet-stream")

    manifest = image_manifest(config, [layer])
    put = v2.request(
        "PUT", f"/v2/{repository}/manifests/v1", body=manifest.encode(), headers={"Content-Type": DOCKER_MANIFEST}
    )
    assert put.status == 201 and put.header("docker-content-digest") == sha256(manifest.encode()), put
    got = v2.request("GET", f"/v2/{repository}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert got.status == 200 and got.body == manifest.encode()
    assert got.header("docker-content-digest") == sha256(manifest.encode())
    head = v2.request("HEAD", f"/v2/{repository}/manifests/v1", headers={"Accept": DOCKER_MANIFEST})
    assert head.status == 200 and head.body == b""
    blob = v2.request("GET", f"/v2/{repository}/blobs/{sha256(layer)}")
    assert blob.status == 307 and blob.header("docker-content-digest") == sha256(layer)
    at_s3 = Client(blob.header("location"), ssl_context=context).request("GET", blob.header("location"))
    assert at_s3.status == 200 and sha256(at_s3.body) == sha256(layer), "the bytes pushed, from the bucket"
    tags = v2.request("GET", f"/v2/{repository}/tags/list")
    assert tags.status == 200 and tags.json() == {"name": repository, "tags": ["v1"]}
    (image,) = ecr.batch_get_image(repositoryName=repository, imageIds=[{"imageTag": "v1"}])["images"]
    assert image["imageManifest"] == manifest, "what /v2 pushed, the ECR API reads"
    _observe(
        "head_manifest",
        {"headers": head.headers, "note": "API Gateway would rename Content-Length and send its own (0)"},
    )

    # The emulator's gap, recorded: random bytes without Content-Type arrive as text there (AWS: as
    # application/json, base64). Either way no blob is stored under a digest its bytes do not have.
    raw = os.urandom(3000)
    started = v2.request("POST", f"/v2/{repository}/blobs/uploads/")
    patched = v2.request("PATCH", started.header("location"), body=raw, chunked=True)
    done = v2.request("PUT", f"{patched.header('location')}?digest={sha256(raw)}")
    _observe(
        "patch_without_content_type_of_non_utf8_bytes",
        {"patch": [patched.status, patched.header("range")], "put": [done.status, done.body.decode()]},
    )
    if done.status == 201:
        fetched = v2.request("GET", f"/v2/{repository}/blobs/{sha256(raw)}")
        at_s3 = Client(fetched.header("location"), ssl_context=context).request("GET", fetched.header("location"))
        assert sha256(at_s3.body) == sha256(raw)
    else:
        assert (done.status, done.error_code) == (400, "DIGEST_INVALID"), done
        available = ecr.batch_check_layer_availability(repositoryName=repository, layerDigests=[sha256(raw)])
        assert available["layers"] == []
    ecr.delete_repository(repositoryName=repository, force=True)


def test_the_sweep_reclaims_an_abandoned_layer_with_its_own_role(deployment, emulator, registry_endpoint):
    """The scheduled sweep, invoked as its rule does, under the role the stack gives it (IAM enforced):
    a layer uploaded and never used by an image is deleted with its blob entry and object."""
    outputs = deployment["outputs"]
    ecr = _ecr(emulator, registry_endpoint)
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


def test_the_sweep_applies_a_lifecycle_policy_and_logs_the_usage_it_leaves(deployment, emulator, registry_endpoint):
    """A lifecycle policy put through the deployed API (keep the newest image) is applied by the
    deployed sweep, invoked as its rule does: the older image is gone from DescribeImages, and the
    run's log (CloudWatch Logs, where the EMF lines become metrics on AWS) has the repository's usage
    measured after the expiry: one image, and every blob it was given (an expiry frees no layer)."""
    outputs = deployment["outputs"]
    ecr = _ecr(emulator, registry_endpoint)
    repository = "e2e-lifecycle"
    ecr.create_repository(repositoryName=repository)
    pushed, stored = [], 0
    for tag in ("old", "new"):
        config, layers = new_blobs(1, size=300)
        upload_image_blobs(ecr, repository, config, layers)
        image = ecr.put_image(repositoryName=repository, imageManifest=image_manifest(config, layers), imageTag=tag)
        pushed.append(image["image"]["imageId"]["imageDigest"])
        stored += sum(len(blob) for blob in (config, *layers))
    keep_newest = {"tagStatus": "any", "countType": "imageCountMoreThan", "countNumber": 1}
    policy = {"rules": [{"rulePriority": 1, "selection": keep_newest, "action": {"type": "expire"}}]}
    ecr.put_lifecycle_policy(repositoryName=repository, lifecyclePolicyText=json.dumps(policy))

    response = emulator.boto3_client("lambda").invoke(FunctionName=outputs["SweepFunctionName"], Payload=b"{}")
    payload = json.loads(response["Payload"].read())
    log = _function_log(emulator, outputs["SweepFunctionName"])
    (WORKDIR / "sweep-lifecycle.log").write_text("\n".join(log) + "\n")
    assert "FunctionError" not in response, (payload, WORKDIR / "sweep-lifecycle.log")
    assert payload["complete"] is True and payload.get("images_expired", 0) >= 1, payload
    described = ecr.describe_images(repositoryName=repository)["imageDetails"]
    assert [(d["imageDigest"], d.get("imageTags")) for d in described] == [(pushed[1], ["new"])]

    documents = [json.loads(line) for line in log if line.startswith("{") and '"_aws"' in line]
    ours = [d for d in documents if d.get(REPOSITORY_DIMENSION) == repository]
    assert len(ours) == 1, (ours, WORKDIR / "sweep-lifecycle.log")
    usage = ours[0]
    (directive,) = usage["_aws"]["CloudWatchMetrics"]
    assert directive["Dimensions"] == [[REGISTRY_DIMENSION, REPOSITORY_DIMENSION]]
    assert usage[REGISTRY_DIMENSION] == ACCOUNT
    assert (usage[IMAGE_COUNT_METRIC], usage[STORED_BYTES_METRIC]) == ([1.0], [float(stored)])
    registry = [d for d in documents if d.get(REGISTRY_DIMENSION) == ACCOUNT and REPOSITORY_DIMENSION not in d]
    assert registry and registry[-1][REPOSITORY_COUNT_METRIC][0] >= 1, documents
    assert payload["usage"]["complete"] is True and payload["usage"]["registries"][ACCOUNT]["images"] >= 1
    ecr.delete_repository(repositoryName=repository, force=True)


def _function_log(emulator, function_name: str) -> list[str]:
    """The lines of a function's log group (its stdout: Powertools JSON lines, EMF documents)."""
    config = emulator.boto3_client("lambda").get_function_configuration(FunctionName=function_name)
    group = config.get("LoggingConfig", {}).get("LogGroup") or f"/aws/lambda/{function_name}"
    events = emulator.boto3_client("logs").filter_log_events(logGroupName=group, limit=10_000)["events"]
    return [e["message"].rstrip() for e in events]


def _save_function_log(emulator, function_name: str, path: Path) -> None:
    """The function's own log (Powertools JSON lines: faults with their stack traces)."""
    try:
        path.write_text("\n".join(_function_log(emulator, function_name)) + "\n")
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
