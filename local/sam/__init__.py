"""`make sam`: the registry served by AWS SAM CLI (`sam local start-api`) over the template the CDK
app synthesizes, the function's bundle run by the Lambda Runtime Interface Emulator in a container.

The pieces, each in its module:
- install.py: what `make install` fetches so that `make sam` downloads nothing: SAM CLI (its own
  venv), a Debian root filesystem (debootstrap), the wheels of the bundle and of the runtime image;
- network.py: the private bridge the function's container is on (SAM maps the emulator's port);
- runtime_image.py: the Lambda-like Python image, built offline the first time, then cached;
- template.py: the synthesized template (x86_64 here), and SAM's view of the function's environment;
- sam_cli.py: SAM CLI's own entry point, with its wait for the emulator's REPORT line fixed;
- __main__.py: starts all of it with DynamoDB Local and moto, and stops all of it on SIGTERM.

The private Docker Engine is the tests' own (tests/tools/engines.py, as bench/v2_docker.py uses it).
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
STATE = ROOT / ".local" / "sam"  # ignored (.gitignore: .local/), removed by `make clean`
SAM_VENV = ROOT / ".sam-venv"
ROOTFS = STATE / "debian-rootfs.tar"  # debootstrap's root filesystem, as one tarball
WHEELS = STATE / "wheels"  # the bundle's wheels (x86_64, the runtime's CPython) and the runtime client's
RUNTIME_REQUIREMENTS = Path(__file__).resolve().parent / "runtime-requirements.txt"
# The local template's function: the x86_64 build of the deployed arm64 one. SAM runs the emulator
# of the machine's CPU, and nothing here emulates another CPU (no binfmt/qemu).
ARCHITECTURE = "x86_64"
