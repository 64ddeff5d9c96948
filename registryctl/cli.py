"""`python -m registryctl keys create|list|revoke` (see the package docstring)."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import UTC, datetime

import botocore.session
from botocore.exceptions import BotoCoreError, ClientError

from registry.auth.permissions import ROLES, parse_grant
from registry.storage.access_keys import AccessKeyError

from .connection import connect

GRANT_HELP = (
    f"<actions>[:<repository patterns>], repeatable. Actions: a role ({', '.join(ROLES)}) or "
    "ecr:<Operation>, comma-separated; patterns comma-separated, '*' = any characters, default '*'. "
    "E.g. push:team/*   pull   admin   ecr:PutImage,ecr:ListImages:app,tools/*"
)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="registryctl", description="Manage the registry's access keys.")
    top.add_argument("--table", help="the keys table (else REGISTRY_KEYS_TABLE, else --stack)")
    top.add_argument("--kms-key", help="KMS key that encrypts secrets (else REGISTRY_KEYS_KMS_KEY, else --stack)")
    top.add_argument("--stack", help="read the table and KMS key from this deployed stack")
    top.add_argument("--region", help="AWS Region (else the default chain)")
    top.add_argument("--profile", help="AWS profile of the operator's credentials")
    top.add_argument(
        "--endpoint-url",
        help="one endpoint for DynamoDB, KMS, ... (emulators); "
        "AWS_ENDPOINT_URL_DYNAMODB / AWS_ENDPOINT_URL_KMS work too",
    )
    top.add_argument("--output", choices=("text", "json"), default="text")
    groups = top.add_subparsers(dest="group", required=True)
    keys = groups.add_parser("keys", help="access keys").add_subparsers(dest="command", required=True)

    create = keys.add_parser("create", help="issue a key; prints its secret once")
    create.add_argument("--registry", required=True, help="the 12-digit registry id the key acts in")
    create.add_argument("--name", required=True, help="a label: the principal is user/<name>")
    create.add_argument("--grant", action="append", required=True, help=GRANT_HELP)
    create.add_argument("--access-key-id", help="use this id instead of a new random one (seeding)")
    create.add_argument(
        "--secret-stdin", action="store_true", help="read the secret from stdin instead of generating one (seeding)"
    )

    listing = keys.add_parser("list", help="keys and their grants (never secrets)")
    listing.add_argument("--registry", help="only the keys of this registry")

    revoke = keys.add_parser("revoke", help="revoke a key for good (effective within the cache bound)")
    revoke.add_argument("access_key_id")
    for command in (create, listing, revoke):  # also accepted after the command
        command.add_argument("--output", choices=("text", "json"), default=argparse.SUPPRESS)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        store = connect(
            table=args.table,
            kms_key=args.kms_key,
            stack=args.stack,
            region=args.region,
            profile=args.profile,
            endpoint_url=args.endpoint_url,
        )
        if args.command == "create":
            return _create(store, args)
        if args.command == "list":
            return _list(store, args)
        store.revoke(args.access_key_id, time.time())
        print(
            json.dumps({"Revoked": args.access_key_id})
            if args.output == "json"
            else f"Revoked {args.access_key_id}. Warm registry functions stop accepting it within their "
            f"key cache time (REGISTRY_KEY_CACHE_SECONDS, default 60 s)."
        )
        return 0
    except (AccessKeyError, ValueError) as error:
        print(f"registryctl: {error}", file=sys.stderr)
        return 2
    except (ClientError, BotoCoreError) as error:
        print(f"registryctl: AWS said: {error}", file=sys.stderr)
        return 1


def _create(store, args) -> int:
    operations = botocore.session.get_session().get_service_model("ecr").operation_names
    grants = tuple(parse_grant(text, operations) for text in args.grant)
    secret = sys.stdin.readline().rstrip("\r\n") if args.secret_stdin else None
    if args.secret_stdin and not secret:
        raise ValueError("--secret-stdin: no secret on stdin")
    key = store.create(args.registry, args.name, grants, time.time(), access_key_id=args.access_key_id, secret=secret)
    if args.output == "json":
        print(
            json.dumps(
                {
                    "AccessKeyId": key.access_key_id,
                    "SecretAccessKey": key.secret,
                    "RegistryId": key.registry_id,
                    "Principal": key.principal_arn,
                    "Grants": _grants(key),
                }
            )
        )
        return 0
    print(f"""Access key of registry {key.registry_id} ({key.principal_arn}), grants: {_grants_text(key)}
The secret is shown only now: store it.

[{key.name}]
aws_access_key_id = {key.access_key_id}
aws_secret_access_key = {key.secret}

(the lines above are a profile for ~/.aws/credentials; use it with --profile {key.name} --endpoint-url <registry>)""")
    return 0


def _list(store, args) -> int:
    keys = sorted(store.list(args.registry), key=lambda k: (k.registry_id, k.created_at, k.access_key_id))
    if args.output == "json":
        print(
            json.dumps(
                [
                    {
                        "AccessKeyId": k.access_key_id,
                        "RegistryId": k.registry_id,
                        "Name": k.name,
                        "Status": "Active" if k.active else "Revoked",
                        "Grants": _grants(k),
                        "CreatedAt": k.created_at,
                    }
                    for k in keys
                ],
                indent=2,
            )
        )
        return 0
    print(f"{'ACCESS KEY ID':<22} {'REGISTRY':<13} {'STATUS':<8} {'CREATED (UTC)':<20} {'NAME':<20} GRANTS")
    for k in keys:
        created = datetime.fromtimestamp(k.created_at, UTC).strftime("%Y-%m-%d %H:%M:%S")
        print(
            f"{k.access_key_id:<22} {k.registry_id:<13} {'Active' if k.active else 'Revoked':<8} "
            f"{created:<20} {k.name:<20} {_grants_text(k)}"
        )
    return 0


def _grants(key) -> list[dict]:
    return [{"actions": list(g.actions), "repositories": list(g.repositories)} for g in key.grants]


def _grants_text(key) -> str:
    return " ".join(f"{','.join(g.actions)}:{','.join(g.repositories)}" for g in key.grants)
