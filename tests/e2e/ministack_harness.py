"""ministack as a stand-in AWS account: start it, deploy the stack to it with the CDK CLI, tear down.

ministack runs with IAM enforced (AUTH=true) and TLS (USE_SSL=1, a self-signed certificate made at
start). TLS matters: the stack's buckets (and CDK's bootstrap bucket) deny requests without
aws:SecureTransport, and ministack enforces that under AUTH=true. Over TLS the deployed template is
the production one, with no policy removed.

Its quirks, and how they are handled here:
- IAM sees no encryption context of KMS requests (kms:EncryptionContextKeys, kms:EncryptionContext:*),
  which the function's kms:Decrypt on the access keys' KMS key requires: ministack is started by
  ministack_launcher.py, which supplies them from the request as AWS does;
- it refuses alarms on metric math or Metrics Insights queries (the DynamoDB alarms): the launcher
  records them as AWS does, unevaluated;
- it runs Python functions on ITS OWN interpreter (.ministack-venv's python, whatever the declared
  runtime): the asset is bundled for that interpreter's version and this machine's CPU
  (registry:bundlePythonVersion / registry:bundlePlatform context);
- functions inherit ministack's environment: it is started with a minimal one, so that the CA
  variables of this machine don't stop the functions from trusting the emulator's certificate;
- the REST API's invoke URL is http(s)://127.0.0.1:<port>/_aws/execute-api/<api-id>/<stage>;
- CDK's Node.js custom resources can't run there: the stack has none (no autoDeleteObjects);
- with USE_SSL it also listens on 127.0.0.1:443 when that port is free (ministack's own choice).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VENV = Path(os.environ.get("MINISTACK_VENV") or ROOT / ".ministack-venv")
INSTALLER = ROOT / "tests" / "e2e" / "ministack.sh"
LAUNCHER = ROOT / "tests" / "e2e" / "ministack_launcher.py"
ACCOUNT, REGION = "000000000000", "us-east-1"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"}  # ministack's root
CDK = ROOT / "node_modules" / ".bin" / "cdk"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ensure_installed() -> Path:
    """The ministack venv, installed by tests/e2e/ministack.sh if missing or stale."""
    subprocess.run(["bash", str(INSTALLER)], check=True, cwd=ROOT, env={**os.environ, "MINISTACK_VENV": str(VENV)})
    return VENV


def interpreter_version(venv: Path) -> str:
    """The Python that will run the function: the one of ministack's venv."""
    result = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"],
        check=True,
        capture_output=True,
        text=True,
    )
    return result.stdout.strip()


def wheel_platform() -> str:
    machine = platform.machine().lower()
    return "manylinux2014_" + {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


@dataclass
class Ministack:
    workdir: Path
    venv: Path = VENV
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "ministack.log"

    @property
    def ca_bundle(self) -> Path:
        """The system's roots plus the emulator's self-signed certificate."""
        return self.workdir / "ca-bundle.pem"

    def start(self, timeout: float = 60) -> Ministack:
        tmp = self.workdir / "tmp"  # the certificate and the functions' unpacked code live here
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.workdir),
            "LANG": "C.UTF-8",
            "TMPDIR": str(tmp),
            "GATEWAY_PORT": str(self.port),
            "BIND_HOST": "127.0.0.1",
            "MINISTACK_HOST": "127.0.0.1",
            "MINISTACK_REGION": REGION,
            "AUTH": "true",
            "USE_SSL": "1",
            "LOG_LEVEL": "INFO",
        }
        with open(self.log_path, "wb") as log:
            # Its own process group: stopping it also stops the function workers it spawned.
            self.process = subprocess.Popen(
                [str(self.venv / "bin" / "python"), str(LAUNCHER)],
                env=env,
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        certificate = tmp / "ministack-tls" / "server.crt"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ministack exited ({self.process.returncode}); see {self.log_path}")
            if certificate.exists() and self._healthy(certificate):
                self.ca_bundle.write_bytes(_system_roots() + b"\n" + certificate.read_bytes())
                return self
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"ministack not ready after {timeout:.0f}s; see {self.log_path}")

    def _healthy(self, certificate: Path) -> bool:
        try:
            context = ssl.create_default_context(cafile=str(certificate))
            with urllib.request.urlopen(f"{self.endpoint}/_ministack/health", timeout=2, context=context) as r:
                return r.status == 200
        except (OSError, ssl.SSLError):
            return False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
            try:
                os.killpg(self.process.pid, sig)
                self.process.wait(timeout=wait)
                return
            except ProcessLookupError:
                return
            except subprocess.TimeoutExpired:
                continue  # a pending CloudFormation wait can ignore SIGTERM: kill it

    def client_env(self) -> dict[str, str]:
        """Environment for AWS clients (CDK CLI, boto3, urllib) that talk to the emulator."""
        bundle = str(self.ca_bundle)
        return {
            **CREDENTIALS,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_EC2_METADATA_DISABLED": "true",
            "AWS_CA_BUNDLE": bundle,
            "NODE_EXTRA_CA_CERTS": bundle,
            "SSL_CERT_FILE": bundle,
            "REQUESTS_CA_BUNDLE": bundle,
            "CURL_CA_BUNDLE": bundle,
        }

    def tool_env(self) -> dict[str, str]:
        """Environment for a Python tool of this repository (registryctl, pytest) run against the
        emulator: this process's, without AWS/pytest settings of the machine, plus client_env()."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTEST_"))}
        env.update(self.client_env())
        return env

    def invoke_url(self, rest_api_id: str, stage: str) -> str:
        return f"{self.endpoint}/_aws/execute-api/{rest_api_id}/{stage}"

    def boto3_client(self, service: str):
        import boto3

        return boto3.client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            verify=str(self.ca_bundle),
            **{k.lower(): v for k, v in CREDENTIALS.items()},
        )


def _system_roots() -> bytes:
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and Path(candidate).is_file():
            return Path(candidate).read_bytes()
    return b""


def run_cdk(args: list[str], *, emulator: Ministack, cwd: Path, log: Path, timeout: float = 600) -> float:
    """Run the CDK CLI against the emulator; returns the seconds it took, raises with its log tail."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "CDK_", "PYTEST_"))}
    env.update(emulator.client_env())
    env.update({"JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION": "20", "CDK_DISABLE_CLI_TELEMETRY": "true"})
    started = time.monotonic()
    with open(log, "ab") as out:
        out.write(f"\n$ cdk {' '.join(args)}\n".encode())
        out.flush()
        result = subprocess.run(
            [str(CDK), *args, "--no-notices"],
            check=False,
            cwd=cwd,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            timeout=timeout,
        )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"cdk {args[0]} failed ({result.returncode}) after {elapsed:.0f}s:\n{_tail(log)}")
    return elapsed


def _tail(path: Path, lines: int = 60) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def read_outputs(path: Path, stack: str) -> dict[str, str]:
    return json.loads(path.read_text())[stack]
