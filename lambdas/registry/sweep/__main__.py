"""`python -m registry.sweep [--dry-run] [--grace-seconds N] [--now EPOCH]`, with the function's
environment (tables, bucket, Region): one sweep run, its report as JSON on stdout."""

from __future__ import annotations

import argparse
import json
import sys

from ..config import Settings
from ..storage import RegistryStore
from . import GRACE_ENV, Sweeper, grace_from_environment


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m registry.sweep", description="Reclaim abandoned uploads and blobs."
    )
    parser.add_argument("--dry-run", action="store_true", help="count what would go, delete nothing")
    parser.add_argument(
        "--grace-seconds",
        type=float,
        default=None,
        help=f"minimum age of what is reclaimed (default ${GRACE_ENV} or one day)",
    )
    parser.add_argument("--now", type=float, default=None, help="the clock, epoch seconds (tests)")
    args = parser.parse_args(argv)
    grace = args.grace_seconds if args.grace_seconds is not None else grace_from_environment()
    sweeper = Sweeper(RegistryStore(Settings.from_environment()), grace_seconds=grace, dry_run=args.dry_run)
    json.dump(sweeper.run(now=args.now), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
