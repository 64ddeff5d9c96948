"""Running a bench.child task in a fresh process with the handler's environment."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile

from bench.common import ROOT


def run_child(task: str, arguments: dict, environment: dict[str, str], timeout: float = 900) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-") as folder:
        source, target = os.path.join(folder, "in.json"), os.path.join(folder, "out.json")
        with open(source, "w") as handle:
            json.dump(arguments, handle)
        result = subprocess.run(
            [sys.executable, "-m", "bench.child", task, source, target],
            cwd=ROOT,
            env={**os.environ, **environment},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            timeout=timeout,
        )
        if result.returncode != 0:
            raise RuntimeError(f"bench.child {task} failed ({result.returncode}):\n{result.stderr[-4000:]}")
        with open(target) as handle:
            return json.load(handle)
