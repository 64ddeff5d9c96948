"""Real container tools, started privately for the tests (a pytest plugin: tests/oci/conftest.py imports it).

Debian's packages, installed by `make install` (tests/tools/install-debian-tools.sh), never downloaded
at run time:

- `docker_engine`: a private dockerd (20.10, docker.io) with its own data root, exec root and socket
  under .local/docker/, no bridge and no iptables (shared/research/docker-engine.md), and
  the containerd it starts. `.run("push", ref)` runs the docker client of the same package against it;
  `.env` is the environment for any other command (DOCKER_HOST, a private DOCKER_CONFIG).
- `ctr`: containerd's own client on that daemon's containerd (`--address`), in a namespace of its own.
- `skopeo`: skopeo with a private policy, auth file and temporary folder.
- `busybox_image`: `local/busybox:test`, made offline: a root filesystem of Debian's static busybox,
  `docker import`ed, then `docker build` FROM it with a file and a CMD; `.with_random_layer(ref, mib)`
  builds an image with one more layer of that many random (incompressible) MiB.
- `distribution_registry`: Debian's docker-registry (CNCF Distribution 2.8) on a free loopback port,
  filesystem storage in a temporary folder, no auth.

Each fixture skips with the reason when its binaries are missing; with CI or REGISTRY_REQUIRE_DOCKER=1
set, it fails instead, so that CI never passes by skipping. Daemons are stopped by PID at the end of
the session. Steps are timed (`timed`); the conftest prints the times at the end of the run.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".local" / "docker"  # ignored (.gitignore: .local/), removed by `make clean`
ENGINE_STATE = STATE / "engine"  # wiped when the daemon starts
INSTALL_HINT = "run `make install` (tests/tools/install-debian-tools.sh: apt-get install, as root)"
DEFAULT_TIMEOUT = 120.0
SOCKET_PATH_MAX = 107  # sun_path is 108 bytes with the terminating NUL
# The longest socket dockerd and its containerd make under the exec root.
LONGEST_EXEC_SOCKET = "/containerd/containerd-debug.sock"

# label -> seconds, in the order measured; printed by the conftest's terminal summary
TIMINGS: dict[str, float] = {}


@contextlib.contextmanager
def timed(label: str) -> Iterator[None]:
    start = time.monotonic()
    try:
        yield
    finally:
        TIMINGS[label] = time.monotonic() - start


def tools_required() -> bool:
    """In CI (or when asked), a missing tool is a failure, never a skip."""
    return bool(os.environ.get("CI")) or os.environ.get("REGISTRY_REQUIRE_DOCKER") == "1"


def missing(reason: str) -> None:
    """Skip the test that needs a tool that is not here, or fail it where tools are required."""
    if tools_required():
        pytest.fail(f"{reason} (required: CI or REGISTRY_REQUIRE_DOCKER=1 is set)", pytrace=False)
    pytest.skip(reason)


def find_binary(name: str, *preferred: str) -> str:
    """The first of `preferred` that exists, else `name` on PATH; missing() when there is none."""
    for path in preferred:
        if os.access(path, os.X_OK):
            return path
    found = shutil.which(name, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
    if not found:
        missing(f"`{name}` is not installed: {INSTALL_HINT}")
    return found  # type: ignore[return-value]


def run_command(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = DEFAULT_TIMEOUT,
    input: str | bytes | None = None,
    text: bool = True,
    cwd: str | Path | None = None,
) -> subprocess.CompletedProcess:
    """subprocess.run with output captured; a failure raises with the command's stderr in the message."""
    result = subprocess.run(
        [str(a) for a in argv],
        env=env,
        capture_output=True,
        timeout=timeout,
        input=input,
        text=text,
        cwd=cwd,
        check=False,
    )
    if check and result.returncode != 0:
        raise CommandFailed(result)
    return result


class CommandFailed(subprocess.CalledProcessError):
    def __init__(self, result: subprocess.CompletedProcess):
        super().__init__(result.returncode, result.args, result.stdout, result.stderr)

    def __str__(self) -> str:
        def tail(out: str | bytes | None) -> str:
            if isinstance(out, bytes):
                out = out.decode(errors="replace")
            return (out or "").strip()[-2000:]

        return (
            f"{' '.join(self.cmd)} exited {self.returncode}\n"
            f"--- stderr ---\n{tail(self.stderr)}\n--- stdout ---\n{tail(self.stdout)}"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(
    predicate, *, timeout: float, what: str, process: subprocess.Popen | None = None, log: Path | None = None
):
    """Poll `predicate` until it returns a truthy value; fail with the log's tail when it never does."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        exited = process is not None and process.poll() is not None
        if exited or time.monotonic() > deadline:
            why = f"exited with {process.returncode}" if exited else f"not ready after {timeout:.0f} s"  # type: ignore[union-attr]
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise RuntimeError(f"{what} {why}\n--- {log} ---\n{tail}")
        time.sleep(0.05)


def process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie (exited, not yet reaped) answers kill(0) too.
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


def stop_pid(pid: int, *, timeout: float = 20.0) -> None:
    """SIGTERM, then SIGKILL after `timeout`; returns once the process is gone."""
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait
        while process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if not process_alive(pid):
            return


def stop_process(process: subprocess.Popen, *, timeout: float = 20.0) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the test run ends in any way, `kill -9` included."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


PR_SET_PDEATHSIG = 1


def start_daemon(argv: Sequence[str], log: Path, pidfile: Path | None = None) -> subprocess.Popen:
    """Start a daemon of the tests: output to `log`, its own session, SIGTERM when this process dies."""
    with log.open("ab") as out:
        process = subprocess.Popen(
            [str(a) for a in argv],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
    if pidfile is not None:
        pidfile.write_text(f"{process.pid}\n")
    return process


def stop_stale(pidfile: Path, marker: str) -> None:
    """Stop the process a killed run left (its PID in `pidfile`), if its command line names `marker`."""
    pid = read_pid(pidfile)
    if pid and process_alive(pid) and marker in _cmdline(pid):
        stop_pid(pid)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


# --------------------------------------------------------------------------------------------------
# docker


@dataclass
class DockerEngine:
    """A private dockerd. `run(*args)` runs its docker client: `engine.run("push", ref)`."""

    root: Path  # data root, logs, the docker client's config
    exec_root: Path  # sockets (short: a unix socket path has at most 107 bytes)
    docker: str  # the docker client of the docker.io package, same version as the daemon
    dockerd: str
    env: dict[str, str]  # for any command that talks to this daemon (DOCKER_HOST, DOCKER_CONFIG)
    # No network but the host's and none by default; `--bridge=<ours>` where a tool needs port
    # mapping (SAM local): never NAT, never iptables, so containers reach this host only.
    network_args: tuple[str, ...] = ("--bridge=none",)
    process: subprocess.Popen | None = None
    log: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log = self.root / "dockerd.log"

    @property
    def socket(self) -> Path:
        return self.exec_root / "docker.sock"

    @property
    def host(self) -> str:
        return f"unix://{self.socket}"

    @property
    def pidfile(self) -> Path:
        return self.exec_root / "dockerd.pid"

    @property
    def containerd_address(self) -> Path:
        """The socket of the containerd this dockerd started (for `ctr --address`)."""
        return self.exec_root / "containerd" / "containerd.sock"

    @property
    def containerd_pidfile(self) -> Path:
        return self.exec_root / "containerd" / "containerd.pid"

    def run(self, *args: str | Path, **kwargs) -> subprocess.CompletedProcess:
        """`docker *args` against this daemon: checked, output captured, with a timeout (kwargs of run_command)."""
        return run_command([self.docker, *args], env=self.env, **kwargs)

    # lifecycle -------------------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> None:
        self.exec_root.mkdir(parents=True, exist_ok=True)
        (self.root / "config").mkdir(parents=True, exist_ok=True)
        (self.root / "config" / "config.json").write_text("{}\n")
        argv = [
            self.dockerd,
            *self.network_args,
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--data-root",
            str(self.root / "data"),
            "--exec-root",
            str(self.exec_root),
            "--host",
            self.host,
            "--pidfile",
            str(self.pidfile),
            # Only our own config: neither /etc/docker/daemon.json nor registry mirrors from outside.
            "--config-file",
            str(self.root / "daemon.json"),
        ]
        (self.root / "daemon.json").write_text("{}\n")
        self.process = start_daemon(argv, self.log)

        def answers() -> bool:
            try:
                return self.run("info", "--format", "{{.ServerVersion}}", timeout=10, check=False).returncode == 0
            except subprocess.TimeoutExpired:
                return False

        try:
            wait_until(answers, timeout=timeout, what="dockerd", process=self.process, log=self.log)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Remove what containers are left, stop dockerd, then its containerd if it outlived it."""
        if self.process is None:
            return
        containerd = read_pid(self.containerd_pidfile)
        if self.process.poll() is None:
            with contextlib.suppress(Exception):
                ids = self.run("ps", "-aq", timeout=20, check=False).stdout.split()
                if ids:
                    self.run("rm", "-f", *ids, timeout=60, check=False)
        stop_process(self.process)
        if containerd and process_alive(containerd) and str(self.exec_root) in _cmdline(containerd):
            stop_pid(containerd)
        self.process = None
        if not self.exec_root.is_relative_to(self.root):  # the short folder in /tmp
            shutil.rmtree(self.exec_root, ignore_errors=True)


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def _exec_root_for(root: Path) -> Path:
    """`root/exec`, unless the sockets under it would pass the unix socket path limit: then a folder
    in /tmp, whose name `root/exec-root` records for the next run's clean-up."""
    exec_root = root / "exec"
    if len(str(exec_root) + LONGEST_EXEC_SOCKET) > SOCKET_PATH_MAX:
        exec_root = Path(tempfile.mkdtemp(prefix="rt-dockerd-", dir="/tmp"))
    (root / "exec-root").write_text(str(exec_root))
    return exec_root


def _clean_stale(root: Path, keep: tuple[str, ...] = ()) -> None:
    """A run that was killed may have left its dockerd, containerd or mounts under `root`: our own only.
    The entries of `root` named in `keep` (the image store) stay."""
    exec_root = Path(_read(root / "exec-root") or root / "exec")
    for pidfile in (exec_root / "dockerd.pid", exec_root / "containerd" / "containerd.pid"):
        stop_stale(pidfile, str(exec_root))
    mounts = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4]
            if point.startswith((f"{root}/", f"{exec_root}/")):
                mounts.append(point)
    for point in sorted(mounts, key=len, reverse=True):
        subprocess.run(["umount", "-l", point], check=False, capture_output=True)
    shutil.rmtree(exec_root, ignore_errors=True)
    entries = root.iterdir() if keep and root.is_dir() else [root]
    for entry in entries:
        if entry.name not in keep:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink(missing_ok=True)


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def start_docker_engine(
    root: Path = ENGINE_STATE, *, keep_images: bool = False, network_args: tuple[str, ...] = ("--bridge=none",)
) -> DockerEngine:
    """A private dockerd under `root`, wiped first (its images too, unless `keep_images`: a cache)."""
    dockerd = find_binary("dockerd", "/usr/sbin/dockerd")
    # /usr/local/bin/docker (a newer client, 28.x) may come first on PATH: use the package's own.
    docker = find_binary("docker", "/usr/bin/docker")
    if os.geteuid() != 0:
        missing("dockerd needs root here (the tests start their own daemon; CI runs as root)")
    _clean_stale(root, keep=("data",) if keep_images else ())
    root.mkdir(parents=True, exist_ok=True)
    exec_root = _exec_root_for(root)
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
    env.update(
        DOCKER_HOST=f"unix://{exec_root / 'docker.sock'}",
        DOCKER_CONFIG=str(root / "config"),  # `docker login` in a test writes here, not to ~/.docker
        DOCKER_BUILDKIT="0",  # the classic builder: works offline, no buildx plugin needed
        DOCKER_CLI_HINTS="false",
    )
    engine = DockerEngine(
        root=root, exec_root=exec_root, docker=docker, dockerd=dockerd, env=env, network_args=network_args
    )
    with timed("dockerd: start until `docker info` answers"):
        engine.start()
    return engine


# --------------------------------------------------------------------------------------------------
# containerd's ctr and skopeo


@dataclass
class Ctr:
    """containerd's `ctr` on the docker engine's containerd, in a namespace of its own (not `moby`)."""

    binary: str
    address: Path
    namespace: str
    env: dict[str, str]

    @property
    def argv(self) -> list[str]:
        return [self.binary, "--address", str(self.address), "--namespace", self.namespace]

    def run(self, *args: str | Path, **kwargs) -> subprocess.CompletedProcess:
        """`ctr --address … --namespace … *args`: e.g. `ctr.run("images", "pull", "--plain-http", ref)`."""
        return run_command([*self.argv, *args], env=self.env, **kwargs)


@dataclass
class Skopeo:
    """skopeo with a private trust policy (accept anything), auth file and temporary folder.

    Over plain HTTP skopeo needs `--tls-verify=false` (or --src-/--dest-tls-verify=false), even on
    loopback: unlike docker, it never falls back from HTTPS by itself.
    """

    binary: str
    root: Path
    env: dict[str, str]

    @property
    def policy(self) -> Path:
        return self.root / "policy.json"

    @property
    def authfile(self) -> Path:
        return self.root / "auth.json"  # REGISTRY_AUTH_FILE: `skopeo login` writes here

    @property
    def argv(self) -> list[str]:
        return [self.binary, "--policy", str(self.policy), "--tmpdir", str(self.root / "tmp")]

    def run(self, *args: str | Path, **kwargs) -> subprocess.CompletedProcess:
        """`skopeo --policy … *args`: e.g. `skopeo.run("copy", "--src-tls-verify=false", src, dst)`."""
        return run_command([*self.argv, *args], env=self.env, **kwargs)

    def list_tags(self, reference: str, *, tls_verify: bool = False) -> list[str]:
        out = self.run("list-tags", f"--tls-verify={str(tls_verify).lower()}", reference).stdout
        return json.loads(out)["Tags"]


def make_skopeo(root: Path) -> Skopeo:
    binary = find_binary("skopeo", "/usr/bin/skopeo")
    root.mkdir(parents=True, exist_ok=True)
    (root / "tmp").mkdir(exist_ok=True)
    (root / "policy.json").write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    (root / "auth.json").write_text('{"auths": {}}\n')
    env = dict(os.environ, REGISTRY_AUTH_FILE=str(root / "auth.json"), TMPDIR=str(root / "tmp"))
    return Skopeo(binary=binary, root=root, env=env)


# --------------------------------------------------------------------------------------------------
# images built offline


BUSYBOX_APPLETS = ("sh", "cat", "echo", "ls")


@dataclass
class BusyboxImage:
    """`ref`: an image FROM `base` (busybox `docker import`ed) with `file` holding `content`, CMD cat file.

    `archive` holds both (`docker save`): a test that removes them to pull them back calls `restore()`.
    """

    engine: DockerEngine
    base: str
    ref: str
    file: str
    content: str
    workdir: Path
    archive: Path

    def restore(self) -> None:
        """`docker load` the saved images when a test removed either."""
        for ref in (self.base, self.ref):
            if self.engine.run("image", "inspect", ref, check=False).returncode != 0:
                self.engine.run("load", "-q", "-i", self.archive)
                return

    def with_random_layer(self, ref: str, mib: float, *, name: str = "/random.bin") -> str:
        """Build `ref` FROM this image plus one layer holding `mib` MiB of random bytes; returns `ref`."""
        context = Path(tempfile.mkdtemp(prefix="random-", dir=self.workdir))
        try:
            with (context / "random.bin").open("wb") as out:
                left = int(mib * 1024 * 1024)
                while left:
                    chunk = min(left, 1 << 20)
                    out.write(os.urandom(chunk))
                    left -= chunk
            (context / "Dockerfile").write_text(f"FROM {self.ref}\nCOPY random.bin {name}\n")
            self.engine.run("build", "-q", "-t", ref, str(context), timeout=300)
        finally:
            shutil.rmtree(context, ignore_errors=True)
        return ref


def build_busybox_image(engine: DockerEngine, ref: str = "local/busybox:test") -> BusyboxImage:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        missing(f"/bin/busybox (Debian's busybox-static) is not installed: {INSTALL_HINT}")
    if not _is_static(busybox):
        missing(f"/bin/busybox is not the static build (Debian's busybox-static): {INSTALL_HINT}")
    workdir = engine.root / "build"
    shutil.rmtree(workdir, ignore_errors=True)
    rootfs = workdir / "rootfs"
    (rootfs / "bin").mkdir(parents=True)
    shutil.copy2(busybox, rootfs / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "tmp").mkdir()
    tarball = workdir / "rootfs.tar"
    run_command(["tar", "-C", rootfs, "--owner=0", "--group=0", "-cf", tarball, "."])
    base = ref.rsplit(":", 1)[0] + "-base:" + ref.rsplit(":", 1)[1]
    with timed("busybox image: docker import of the rootfs"):
        engine.run("import", "--change", 'CMD ["/bin/sh"]', tarball, base)
    context = workdir / "context"
    context.mkdir()
    content = "hello from the offline busybox image\n"
    (context / "hello.txt").write_text(content)
    dockerfile = [
        f"FROM {base}",
        "COPY hello.txt /hello.txt",
        "LABEL org.opencontainers.image.title=busybox-test",
        'CMD ["cat", "/hello.txt"]',
    ]
    (context / "Dockerfile").write_text("\n".join(dockerfile) + "\n")
    with timed("busybox image: docker build FROM it"):
        engine.run("build", "-q", "-t", ref, context)
    archive = workdir / "images.tar"
    engine.run("save", "-o", archive, base, ref)
    return BusyboxImage(
        engine=engine, base=base, ref=ref, file="/hello.txt", content=content, workdir=workdir, archive=archive
    )


def _is_static(path: Path) -> bool:
    """A 64-bit little-endian ELF without a PT_INTERP program header: it needs no dynamic loader."""
    with path.open("rb") as f:
        header = f.read(64)
        if header[:4] != b"\x7fELF" or header[4] != 2 or header[5] != 1:
            return False
        phoff, phentsize, phnum = struct.unpack_from("<Q", header, 32)[0], *struct.unpack_from("<HH", header, 54)
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    return all(struct.unpack_from("<I", table, i * phentsize)[0] != PT_INTERP for i in range(phnum))


PT_INTERP = 3


# --------------------------------------------------------------------------------------------------
# the peer registry


@dataclass
class DistributionRegistry:
    """Debian's docker-registry (CNCF Distribution 2.8.2) on 127.0.0.1:`port`: plain HTTP, no auth."""

    binary: str
    root: Path
    port: int = 0
    process: subprocess.Popen | None = None

    @property
    def host(self) -> str:
        """`127.0.0.1:<port>`, the registry part of an image reference."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    @property
    def log(self) -> Path:
        return self.root / "registry.log"

    def start(self, timeout: float = 30.0) -> None:
        for _attempt in range(3):  # the free port may be taken between the probe and the bind
            self.port = free_port()
            config = self.root / "config.yml"
            config.write_text(
                json.dumps(  # YAML is a superset of JSON
                    {
                        "version": 0.1,
                        "log": {"level": "info", "accesslog": {"disabled": False}},
                        "storage": {
                            "filesystem": {"rootdirectory": str(self.root / "data")},
                            "delete": {"enabled": True},
                        },
                        "http": {"addr": self.host, "secret": "registry-tests-only"},
                    },
                    indent=1,
                )
            )
            self.process = start_daemon([self.binary, "serve", config], self.log, self.root / "registry.pid")
            try:
                wait_until(self._answers, timeout=timeout, what="docker-registry", process=self.process, log=self.log)
                return
            except RuntimeError:
                exited = self.process.poll() is not None
                self.stop()
                if not (exited and "address already in use" in self.log.read_text(errors="replace")):
                    raise
        raise RuntimeError(f"docker-registry found no free port\n{self.log.read_text(errors='replace')[-2000:]}")

    def _answers(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/v2/", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        if self.process is not None:
            stop_process(self.process)
            self.process = None


def start_distribution_registry(root: Path) -> DistributionRegistry:
    binary = find_binary("docker-registry", "/usr/bin/docker-registry")
    stop_stale(root / "registry.pid", str(root / "config.yml"))
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    registry = DistributionRegistry(binary=binary, root=root)
    with timed("docker-registry: start until GET /v2/ answers"):
        registry.start()
    return registry


# --------------------------------------------------------------------------------------------------
# the fixtures (session-scoped: one daemon, one peer registry per test run)


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    engine = start_docker_engine()
    try:
        yield engine
    finally:
        with timed("dockerd: stop (and its containerd)"):
            engine.stop()


@pytest.fixture(scope="session")
def ctr(docker_engine: DockerEngine) -> Ctr:
    binary = find_binary("ctr", "/usr/bin/ctr")
    return Ctr(
        binary=binary, address=docker_engine.containerd_address, namespace="registry-tests", env=dict(os.environ)
    )


@pytest.fixture(scope="session")
def skopeo() -> Skopeo:
    return make_skopeo(STATE / "skopeo")


@pytest.fixture(scope="session")
def busybox_image(docker_engine: DockerEngine) -> BusyboxImage:
    return build_busybox_image(docker_engine)


@pytest.fixture(scope="session")
def distribution_registry() -> Iterator[DistributionRegistry]:
    registry = start_distribution_registry(STATE / "distribution")
    try:
        yield registry
    finally:
        registry.stop()


FIXTURES = ("docker_engine", "ctr", "skopeo", "busybox_image", "distribution_registry")


def mark_docker_tests(items: list[pytest.Item]) -> None:
    """The `docker` marker on every test that uses one of the tools' fixtures (a conftest's
    `pytest_collection_modifyitems`), so `-m 'not docker'` deselects them."""
    for item in items:
        if set(FIXTURES) & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.docker)
