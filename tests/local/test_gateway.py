"""The local gateway (`make run`): black-box, over raw sockets.

As a server on a shared machine: a gateway of its own runs in its own process, logging as `make run`
does, so that its memory and its log are its own; no backends behind it, every request of those tests
is answered before the function. And as API Gateway: what reaches the function (the local stack).
"""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from hypothesis import given, settings
from hypothesis import strategies as st
from support import NO_RETRIES

from local.worker import Invocation

pytestmark = pytest.mark.local_only

ROOT = Path(__file__).resolve().parents[2]
MiB = 1024 * 1024
READ_TIMEOUT = 1.0  # the test gateway's; `make run` waits longer
ANSWER_WITHIN = 10.0  # seconds a test waits for an answer that should be immediate

GATEWAY = f"""
import time
from local.gateway import Gateway
gateway = Gateway(0, {{}}, workers=1, access_log=True, read_timeout={READ_TIMEOUT}).start()
print(gateway.port, flush=True)
time.sleep(3600)
"""


class GatewayProcess:
    def __init__(self, log: Path):
        self.log = log
        with open(log, "wb") as stderr:
            self.process = subprocess.Popen(
                [sys.executable, "-c", GATEWAY], cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr
            )
        self.port = int(self.process.stdout.readline())

    def connect(self) -> socket.socket:
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=ANSWER_WITHIN)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def peak_rss(self) -> int:
        """The process's high-water mark of resident memory (VmHWM), in bytes."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmHWM in /proc/<pid>/status")

    def stderr(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    started = GatewayProcess(tmp_path_factory.mktemp("gateway") / "stderr.log")
    yield started
    started.stop()


def head(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def answer(sock: socket.socket) -> http.client.HTTPResponse:
    response = http.client.HTTPResponse(sock)
    response.begin()
    response.read()
    return response


def ask(gateway: GatewayProcess, request: bytes) -> int:
    with gateway.connect() as sock:
        sock.sendall(request)
        return answer(sock).status


def test_a_body_over_the_limit_is_refused_before_it_is_sent(gateway):
    """413 by the declared length, before reading the body: the answer comes while most of the
    body is still unsent, and the gateway's peak memory does not grow by the body."""
    declared = 300 * MiB
    chunk = b"x" * MiB
    sent = 0
    answered = threading.Event()
    peak_before = gateway.peak_rss()
    with gateway.connect() as sock:
        sock.sendall(head("POST / HTTP/1.1", "Host: localhost", f"Content-Length: {declared}"))

        def send_body():
            nonlocal sent
            try:
                while sent < declared and not answered.is_set():
                    sock.sendall(chunk)
                    sent += len(chunk)
            except OSError:  # the gateway closed the connection: the rest is not wanted
                pass

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        status = answer(sock).status
        sent_when_answered = sent
        answered.set()
        sender.join(timeout=ANSWER_WITHIN)
    peak_growth = gateway.peak_rss() - peak_before
    assert status == 413
    assert sent_when_answered < declared // 10, f"{sent_when_answered / MiB:.0f} MiB sent before the answer"
    assert peak_growth < 16 * MiB, f"peak RSS grew by {peak_growth / MiB:.1f} MiB"


@pytest.mark.parametrize(
    "content_length",
    [["-1"], ["abc"], ["+5"], ["5 5"], ["0x10"], ["5", "6"]],
    ids=["negative", "not-a-number", "signed", "two-numbers", "hex", "twice-differently"],
)
def test_an_invalid_content_length_is_a_400(gateway, content_length):
    request = head("POST / HTTP/1.1", "Host: localhost", *(f"Content-Length: {v}" for v in content_length))
    assert ask(gateway, request) == 400


def test_a_declared_body_that_never_comes_times_out(gateway):
    """The thread serving the connection gives up after the read timeout instead of waiting forever."""
    with gateway.connect() as sock:
        sock.sendall(head("POST / HTTP/1.1", "Host: localhost", "Content-Length: 100") + b"only ten b")
        started = time.monotonic()
        try:
            while sock.recv(4096):  # whatever the gateway answers, it then closes the connection
                pass
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < READ_TIMEOUT + ANSWER_WITHIN / 2


@pytest.mark.parametrize(
    "request_bytes, status",
    [
        (b"NONSENSE\r\n\r\n", 400),
        (b"GET / HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET /" + b"a" * 70_000 + b" HTTP/1.1\r\n\r\n", 414),
        (head("GET / HTTP/1.1", "Host: localhost", "X-Long: " + "a" * 70_000), 431),
        (head("GET / HTTP/1.1", "Host: localhost", *(f"X-Header-{i}: {i}" for i in range(101))), 431),
    ],
    ids=["request-line", "request-line-words", "request-line-too-long", "header-too-long", "too-many-headers"],
)
def test_malformed_requests_get_a_4xx_and_no_traceback(gateway, request_bytes, status):
    assert ask(gateway, request_bytes) == status
    assert "Traceback" not in gateway.stderr()


def test_the_log_leaves_out_query_strings(gateway):
    """A presigned request's query carries its signature and credential: none of it is logged."""
    query = "X-Amz-Credential=AKIDLOGGED&X-Amz-Signature=feedfacefeedface"
    assert ask(gateway, head(f"GET /v1/?{query} HTTP/1.1", "Host: localhost")) == 403
    assert ask(gateway, f"GET /?{query} HTTP/1.1 extra\r\n\r\n".encode()) == 400
    log = gateway.stderr()
    assert "GET /v1/" in log and "403" in log, log  # the requests are logged, their queries not
    assert "feedface" not in log and "AKIDLOGGED" not in log, log


def test_a_client_that_sends_the_whole_body_first_still_gets_the_413(gateway):
    """boto3 writes all of a request before reading: the early answer still reaches it."""
    ecr = boto3.client(
        "ecr",
        endpoint_url=f"http://127.0.0.1:{gateway.port}",
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=NO_RETRIES,
    )
    part = bytes(16 * MiB)  # ~22 MB as base64 JSON
    with pytest.raises(ClientError) as excinfo:
        ecr.upload_layer_part(
            repositoryName="any/repo",
            uploadId="00000000-0000-0000-0000-000000000000",
            partFirstByte=0,
            partLastByte=len(part) - 1,
            layerPartBlob=part,
        )
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


# --- what reaches the function ---------------------------------------------------------------------

BODY = b"{}"


class SignerOfEveryHeader(SigV4Auth):
    """Signs every header of the request, as some signers do (botocore leaves hop-by-hop ones out)."""

    def headers_to_sign(self, request):
        headers = super().headers_to_sign(request)
        for name, value in request.headers.items():
            if name not in headers:
                headers[name.lower()] = value
        return headers


def signed_with(endpoint: str, header: str, value: str) -> tuple[int, str | None]:
    """DescribeRepositories signed with one more header, as a client that signs it sends it."""
    request = AWSRequest(
        method="POST",
        url=endpoint + "/",
        data=BODY,
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
            header: value,
        },
    )
    SignerOfEveryHeader(Credentials("test", "test"), "ecr", "us-east-1").add_auth(request)
    assert header.lower() in request.headers["Authorization"]
    sent = urllib.request.Request(request.url, data=BODY, method="POST", headers=dict(request.headers.items()))
    try:
        with urllib.request.urlopen(sent, timeout=60) as response:
            return response.status, None
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read()).get("__type")


@pytest.mark.parametrize(
    "header, value",
    [
        ("Connection", "close"),  # the value urllib sends
        ("Keep-Alive", "timeout=5"),
        ("Max-Forwards", "10"),
        ("Content-MD5", base64.b64encode(hashlib.md5(BODY).digest()).decode()),
    ],
)
def test_headers_api_gateway_drops_do_not_reach_the_function(registry, header, value):
    """API Gateway passes on neither hop-by-hop headers nor the body's framing: a client that signs
    one has signed a header the function cannot see, and its signature cannot be checked."""
    assert signed_with(registry.endpoint, header, value) == (403, "InvalidSignatureException")


def test_a_signed_content_length_gets_in_though_api_gateway_drops_it(registry):
    """Dropped too, but rebuilt by the function from the body it has (as the JS and Go SDKs sign it)."""
    assert signed_with(registry.endpoint, "Content-Length", str(len(BODY))) == (200, None)


@settings(max_examples=300, deadline=None)
@given(st.none() | st.text())
def test_the_worker_gets_the_event_whole_and_lambda_counts_its_size_whole(body):
    """The worker is sent the body apart from the event (no escaping of MiBs); it gets the same
    event, and Lambda's 6 MB limit still counts it as one JSON document, escapes included."""
    event = {"httpMethod": "POST", "headers": {"content-type": "application/x-amz-json-1.1"}, "body": body}
    invocation = Invocation.of(event)
    assert invocation.size == len(json.dumps(event))
    assert Invocation.read(invocation.event, invocation.body) == event
