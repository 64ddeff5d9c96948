"""Every command the docs mark runnable runs, so that README.md and docs/ cannot drift from the code.

A fenced ```sh (or ```bash) block right after the line `<!-- runnable -->` is runnable (the comment
does not render on GitHub). The runnable blocks of one file are one reader's terminal session: they
run in order, in one bash with `set -euo pipefail`, in a fresh directory, against the local stack
that `make run` serves (the suite's `registry` fixture; its port is given as REGISTRY_PORT, which
the blocks use as `make run` does). The session starts with what a reader has: the AWS CLI and
Python of `.venv` on PATH, a HOME of its own (no ~/.aws), no AWS_* variables, and in its directory
what a checkout has after `make run`: `.venv` and `.local/registryctl.env`.

A command whose line ends in `# fails: <ErrorCode>` must fail with that error code on stderr.
docs/contributing.md describes the convention; which blocks run is listed there too.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
MARKER = "<!-- runnable -->"
SHELLS = ("sh", "bash")
FAILS = re.compile(r"^(?P<command>.*\S)\s+# fails: (?P<code>\w+)\s*$")


@dataclass(frozen=True)
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    text: str

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def runnable_blocks(path: Path) -> list[Block]:
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks = []
    for number, line in enumerate(lines):
        if line.strip() != MARKER:
            continue
        fence = lines[number + 1] if number + 1 < len(lines) else ""
        assert fence.startswith("```") and fence[3:].strip() in SHELLS, (
            f"{path.relative_to(ROOT)}:{number + 1}: {MARKER} must be followed by a ```sh or ```bash fence"
        )
        end = next(i for i in range(number + 2, len(lines)) if lines[i].startswith("```"))
        blocks.append(Block(path, number + 2, "\n".join(lines[number + 2 : end])))
    return blocks


def expect_failures(text: str) -> str:
    """Each `command   # fails: Code` becomes: the command must fail, saying Code on stderr."""
    out: list[str] = []
    for line in text.splitlines():
        match = FAILS.match(line)
        if match is None:
            out.append(line)
            continue
        assert not (out and out[-1].endswith("\\")), f"a command marked `# fails:` must be one line: {line}"
        command, code = match["command"], match["code"]
        quoted = shlex.quote(f"expected {code} from: {command.strip()}")
        out.append(
            f'if {{ {command.strip()} ; }} 2>"$DOC_ERR"; then echo {quoted} >&2; exit 1; fi; '
            f'cat "$DOC_ERR" >&2; grep -q {shlex.quote(code)} "$DOC_ERR" || {{ echo {quoted} >&2; exit 1; }}'
        )
    return "\n".join(out)


def session_script(blocks: list[Block]) -> str:
    parts = [
        "set -euo pipefail",
        "DOC_ERR=$(mktemp)",
        "trap 'rm -f \"$DOC_ERR\"' EXIT",
        "trap 'echo \"failed in the block at $DOC_BLOCK\" >&2' ERR",
    ]
    for block in blocks:
        parts += [f"DOC_BLOCK={shlex.quote(block.where)}", expect_failures(block.text)]
    return "\n".join(parts) + "\n"


SESSIONS = [path for path in DOCS if runnable_blocks(path)]


def test_the_docs_have_runnable_sessions():
    """The first session of the README at least: the convention cannot silently stop matching."""
    assert ROOT / "README.md" in SESSIONS


@pytest.mark.local_only  # the blocks use make run's port and the local keys table
@pytest.mark.parametrize("path", SESSIONS, ids=[str(p.relative_to(ROOT)) for p in SESSIONS])
def test_runnable_blocks_run(path, registry, backends, ecr, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    workdir = tmp_path / "checkout"
    (workdir / ".local").mkdir(parents=True)
    (workdir / ".venv").symlink_to(ROOT / ".venv")
    # What `make run` writes for registryctl (python -m local): the local stack's keys table and KMS key.
    (workdir / ".local" / "registryctl.env").write_text(
        "".join(f"{k}={v}\n" for k, v in backends.registryctl_environment().items())
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REGISTRY_"))}
    env.update(
        HOME=str(home),
        PATH=f"{ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ['PATH']}",
        REGISTRY_PORT=registry.endpoint.rsplit(":", 1)[1].rstrip("/"),
    )
    before = repository_names(ecr)
    try:
        done = subprocess.run(
            ["bash", "-c", session_script(runnable_blocks(path))],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        # The blocks' repositories, so that nothing else in the suite sees them (force: with images).
        for name in repository_names(ecr) - before:
            ecr.delete_repository(repositoryName=name, force=True)
    assert done.returncode == 0, (
        f"{path.name}: exit {done.returncode}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}"
    )


def repository_names(ecr) -> set[str]:
    pages = ecr.get_paginator("describe_repositories").paginate()
    return {repo["repositoryName"] for page in pages for repo in page["repositories"]}


def test_expected_failures_are_checked():
    script = session_script([Block(ROOT / "README.md", 1, "false   # fails: NopeException\ntrue")])
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30)
    assert done.returncode != 0 and "expected NopeException" in done.stderr
    script = session_script([Block(ROOT / "README.md", 1, "echo NopeException >&2; false   # fails: NopeException")])
    assert subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=30).returncode == 0
