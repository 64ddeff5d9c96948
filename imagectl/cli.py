"""`python -m imagectl push|pull|copy` (docs/images.md)."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
from typing import Any
from urllib.parse import urlsplit

from .ecr import Connection, ecr_client, login
from .errors import ToolError, UsageError
from .progress import Reporter, reporter_for
from .proxy import Listen, open_proxy
from .pull import pull
from .push import Target, push
from .resume import ResumeState
from .sources import open_source
from .v2 import DistributionClient, ImageName, RegistrySource, split_reference

INTERRUPTED = 130
Outcome = tuple[dict[str, Any], str]  # the result document and its line for a terminal


def _common(interspersed: bool) -> argparse.ArgumentParser:
    """The connection and output options, accepted before or after the command."""
    default = argparse.SUPPRESS if interspersed else None
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--profile", default=default, help="AWS profile (else the default credential chain)")
    common.add_argument("--region", default=default, help="AWS Region (else AWS_REGION, the profile's)")
    common.add_argument(
        "--endpoint-url", default=default, help="the registry's ECR API endpoint (else AWS_ENDPOINT_URL_ECR)"
    )
    common.add_argument(
        "--output", choices=("text", "json"), default=default, help="json: one event a line on stdout, for CI"
    )
    common.add_argument("--jobs", type=int, default=default, help="blobs moved at once (default 4)")
    return common


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="imagectl", description="Move images into and out of the registry.", parents=[_common(False)]
    )
    common = _common(True)
    commands = top.add_subparsers(dest="command", required=True)
    push_cmd = commands.add_parser(
        "push", parents=[common], help="push an image from an archive, an OCI layout or a Docker Engine"
    )
    push_cmd.add_argument(
        "source",
        help="oci:DIR[:REF], oci-archive:FILE[:REF], docker-archive:FILE[:TAG], docker-daemon:IMAGE, or a path",
    )
    push_cmd.add_argument("destination", metavar="REPO[:TAG]", help="the repository and tag (default tag: latest)")
    push_cmd.add_argument("--create", action="store_true", help="create the repository if it does not exist")
    pull_cmd = commands.add_parser("pull", parents=[common], help="pull an image into an OCI layout or an archive")
    pull_cmd.add_argument("image", metavar="REPO[:TAG|@DIGEST]")
    pull_cmd.add_argument(
        "destination", help="oci:DIR, oci-archive:FILE, docker-archive:FILE, or a path (.tar: docker)"
    )
    pull_cmd.add_argument("--platform", help="os/arch[/variant] of an index to write a docker archive of")
    copy_cmd = commands.add_parser("copy", parents=[common], help="copy an image from another registry into this one")
    copy_cmd.add_argument("source", metavar="HOST/REPO[:TAG|@DIGEST]", help="e.g. 127.0.0.1:5000/library/busybox:1")
    copy_cmd.add_argument("destination", metavar="REPO[:TAG]")
    copy_cmd.add_argument("--src-creds", help="USER:PASSWORD for the source (else IMAGECTL_SRC_CREDS; else anonymous)")
    copy_cmd.add_argument("--create", action="store_true", help="create the repository if it does not exist")
    proxy_cmd = commands.add_parser(
        "proxy", parents=[common], help="serve a registry endpoint on loopback for docker, containerd, skopeo"
    )
    proxy_cmd.add_argument("--listen", default="127.0.0.1:5000", metavar="HOST:PORT", help="default 127.0.0.1:5000")
    proxy_cmd.add_argument(
        "--allow-remote", action="store_true", help="listen beyond loopback (the proxy has no login of its own)"
    )
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    output, jobs = args.output or "text", args.jobs or 4
    reporter = reporter_for(output)
    try:
        if jobs < 1:
            raise UsageError("--jobs must be at least 1")
        connection = Connection(args.profile, args.region, args.endpoint_url)
        result, line = COMMANDS[args.command](args, connection, jobs, reporter)
        reporter.result(result, line)
        return 0
    except ToolError as error:
        return _failed(reporter, output, error.code, str(error), error.exit_code)
    except KeyboardInterrupt:
        return _failed(
            reporter, output, "Interrupted", "interrupted: run the same command again to resume", INTERRUPTED
        )


def _failed(reporter: Reporter, output: str, code: str, message: str, exit_code: int) -> int:
    reporter.close()
    print(f"imagectl: {message}", file=sys.stderr)
    if output == "json":
        print(json.dumps({"event": "error", "code": code, "message": message, "exitCode": exit_code}), flush=True)
    return exit_code


def _target(destination: str, client: Any, create: bool) -> Target:
    repository, tag = split_reference(destination)
    if tag.startswith("sha256:"):
        raise UsageError(f"{destination}: push to a tag (REPO[:TAG]); the digest is the image's own")
    return Target(client, repository, tag, create)


def _push(args: argparse.Namespace, connection: Connection, jobs: int, reporter: Reporter) -> Outcome:
    client = ecr_client(connection, jobs)
    target = _target(args.destination, client, args.create)
    with open_source(args.source) as source:
        result = push(source, target, jobs=jobs, reporter=reporter, state=ResumeState())
    return result, f"pushed {target.repository}:{target.tag} {result['digest']}"


def _copy(args: argparse.Namespace, connection: Connection, jobs: int, reporter: Reporter) -> Outcome:
    try:
        name = ImageName.parse(args.source)
    except ValueError as error:
        raise UsageError(str(error)) from None
    creds = args.src_creds or os.environ.get("IMAGECTL_SRC_CREDS")
    if creds is not None and ":" not in creds:
        raise UsageError("--src-creds is USER:PASSWORD")
    user, _, password = (creds or "").partition(":")
    client_of_source = DistributionClient(name.base_url, (user, password) if creds else None)
    source = RegistrySource(client_of_source, name.repository, name.reference)
    client = ecr_client(connection, jobs)
    target = _target(args.destination, client, args.create)
    result = push(source, target, jobs=jobs, reporter=reporter, state=ResumeState())
    return result, f"copied {args.source} to {target.repository}:{target.tag} {result['digest']}"


def _pull(args: argparse.Namespace, connection: Connection, jobs: int, reporter: Reporter) -> Outcome:
    repository, reference = split_reference(args.image)
    credentials = login(ecr_client(connection, jobs))
    client = DistributionClient(credentials.endpoint, (credentials.username, credentials.password))
    name = f"{urlsplit(credentials.endpoint).netloc}/{repository}"
    result = pull(
        client,
        repository,
        reference,
        args.destination,
        platform_wanted=args.platform,
        name=name,
        jobs=jobs,
        reporter=reporter,
    )
    return result, f"pulled {repository}@{result['digest']} into {result['destination']} ({result['format']})"


def _proxy(args: argparse.Namespace, connection: Connection, jobs: int, reporter: Reporter) -> Outcome:
    server = open_proxy(Listen.parse(args.listen), ecr_client(connection, jobs), args.allow_remote)
    url, registry, direct = server.url, server.upstream.endpoint, server.uploads.direct
    if args.output == "json":
        print(json.dumps({"event": "listening", "url": url, "registry": registry, "directUploads": direct}), flush=True)
    else:
        way = "straight to S3" if direct else "through UploadLayerPart"
        print(f"imagectl proxy: listening on {url} for {registry}, layers go {way} (Ctrl-C stops it)", flush=True)
    signal.signal(signal.SIGTERM, _interrupt)  # stopped as by Ctrl-C
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return {"url": url, "registry": registry}, "imagectl proxy: stopped"


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


COMMANDS = {"push": _push, "pull": _pull, "copy": _copy, "proxy": _proxy}
