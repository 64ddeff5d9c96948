"""`make sam` for real: `sam local start-api` serves the synthesized template, the registry function
runs in a Lambda-like container of a private Docker Engine, and the black-box suites (tests/api,
tests/auth, those not marked local_only) pass through it, as the e2e runs them through the deployed
stack (REGISTRY_ENDPOINT). Then SIGTERM to `make sam` leaves nothing behind: no process, no
container, no daemon, no bridge.

`make sam` starts once for the module (the first start on a machine builds the runtime image);
its timings are in .local/sam/timings.json, the suites' log and report in .local/sam/suites.*.
Deselect with -m 'not sam'.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from xml.etree import ElementTree

import pytest

from local.sam import ROOT, SAM_VENV, STATE
from local.sam.__main__ import ENGINE_ROOT, PROBE_TARGET
from local.sam.network import Bridge
from tests.sam.harness import MakeSam
from tests.tools.engines import missing, process_alive, run_command

pytestmark = pytest.mark.sam
SUITES = ("tests/api", "tests/auth")
# SAM's own deviation, asserted below (test_sam_answers_a_body_that_is_not_utf8_itself): API Gateway
# passes such a body on with the invalid bytes replaced, and the function refuses its signature.
NOT_THROUGH_SAM = ("tests/api/test_protocol.py::test_a_body_that_is_not_utf8_does_not_arrive_as_signed",)
# Any REGISTRY_* variable reaches the function, as with `make run`.
PROBE_VARIABLE = "REGISTRY_SAM_TEST_PROBE"


@pytest.fixture(scope="module")
def make_sam():
    if not (SAM_VENV / "bin" / "sam").exists():
        missing("AWS SAM CLI is not installed: run `make install` (local/sam/install.py)")
    if os.geteuid() != 0:
        missing("make sam starts its own dockerd and bridge: root only (CI runs as root)")
    started = MakeSam(environment={PROBE_VARIABLE: uuid.uuid4().hex})
    try:
        started.wait_until_listening()
        yield started
    finally:
        started.stop()


def _docker(*args: str) -> subprocess.CompletedProcess:
    exec_root = (ENGINE_ROOT / "exec-root").read_text().strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    return run_command(["/usr/bin/docker", *args], env={**env, "DOCKER_HOST": f"unix://{exec_root}/docker.sock"})


def test_the_function_runs_in_a_container_with_the_local_environment(make_sam):
    """SAM's container of the registry function got what `make run` gives the function: every
    REGISTRY_* variable of `make sam`'s environment, and the stand-ins' endpoints on the bridge."""
    (container,) = _docker("ps", "--quiet").stdout.split()
    (config,) = json.loads(_docker("inspect", container).stdout)
    environment = dict(item.split("=", 1) for item in config["Config"]["Env"])
    assert environment[PROBE_VARIABLE] == make_sam.environment[PROBE_VARIABLE]
    gateway = Bridge.for_state(STATE).gateway
    assert environment["AWS_ENDPOINT_URL_DYNAMODB"].startswith(f"http://{gateway}:")
    assert environment["AWS_ENDPOINT_URL_S3"].startswith(f"http://{gateway}:")
    assert environment["AWS_LAMBDA_FUNCTION_HANDLER"] == "registry.handler.lambda_handler"
    assert config["Config"]["Image"].startswith("registry-sam/python:rapid-x86_64")


def test_black_box_suites_pass_through_sam_local(make_sam):
    log, report = STATE / "suites.log", STATE / "suites.xml"
    env = {k: v for k, v in os.environ.items() if k != "REGISTRY_PORT"}
    env["REGISTRY_ENDPOINT"] = make_sam.endpoint
    with log.open("wb") as out:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", *SUITES, "-q", "-p", "no:cacheprovider", "-o", "addopts=-ra",
             f"--junitxml={report}", *(f"--deselect={test}" for test in NOT_THROUGH_SAM)],
            check=False, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, timeout=1200,
        )  # fmt: skip
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:])
    assert result.returncode == 0, f"{' and '.join(SUITES)} failed through {make_sam.endpoint} ({log}):\n{tail}"
    suite = ElementTree.parse(report).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    assert int(suite.get("tests")) - int(suite.get("skipped")) > 0, tail
    names = {case.get("classname", "") for case in suite.iter("testcase") if case.find("skipped") is None}
    for folder in SUITES:
        prefix = folder.replace("/", ".")
        assert any(name.startswith(prefix + ".") for name in names), (folder, sorted(names)[:5])
    assert "tests.auth.test_authentication" in names  # the signature tests ran through it


def test_sam_answers_a_body_that_is_not_utf8_itself(make_sam):
    """SAM decodes a body of a media type that is not binary as UTF-8 and answers 502 when it cannot,
    before any function runs (API Gateway replaces the invalid bytes and calls the function)."""
    request = urllib.request.Request(
        make_sam.endpoint + "/",
        data=b"\xff\xfe{}",
        method="POST",
        headers={"X-Amz-Target": PROBE_TARGET, "Content-Type": "application/x-amz-json-1.1"},
    )
    with pytest.raises(urllib.error.HTTPError) as answer:
        urllib.request.urlopen(request, timeout=60)
    assert answer.value.code == 502
    assert "__type" not in answer.value.read().decode(errors="replace")  # not the function's answer


def test_sigterm_to_make_sam_leaves_nothing_behind(make_sam):
    """Last: it stops the module's `make sam`."""
    exec_root = (ENGINE_ROOT / "exec-root").read_text().strip()
    daemons = [_pid(Path(exec_root) / "dockerd.pid"), _pid(Path(exec_root) / "containerd" / "containerd.pid")]
    assert all(pid and process_alive(pid) for pid in daemons), daemons
    assert _docker("ps", "--quiet").stdout.split()  # a container to stop
    make_sam.stop()  # SIGTERM to make's own pid; returns once its session is empty
    assert not [pid for pid in daemons if pid and process_alive(pid)]
    left = [line for line in _all_command_lines() if exec_root in line or str(ENGINE_ROOT) in line]
    assert not left, left  # no dockerd, containerd, shim (the containers) or docker-proxy of ours
    assert not Bridge.for_state(STATE).exists()
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", make_sam.port)) != 0  # nothing listens on its port
    assert "Stopping..." in make_sam.log.read_text(errors="replace")


def _pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def _all_command_lines() -> list[str]:
    lines = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines.append((entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
            except OSError:
                continue
    return lines
