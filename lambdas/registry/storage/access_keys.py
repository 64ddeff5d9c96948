"""Access keys issued by the registry: one item per key in the `keys` table.

    attribute          meaning
    access_key_id      partition key; what the client puts in its SigV4 credential scope
    registry_id        the one registry (tenant) the key acts in
    name               a label chosen by the operator; the principal is user/<name>
    grants             [{actions: [...], repositories: [...]}] (see auth/permissions.py)
    status             "Active" | "Revoked"  (a revoked key keeps its item, without its secret)
    secret_ciphertext  the secret access key, encrypted with KMS under the encryption context
                       {"registry_id", "access_key_id"}: a ciphertext copied onto another item
                       does not decrypt there
    created_at, revoked_at

The secret never exists in clear outside memory: `create` encrypts it before the item is written,
`get` decrypts it for the verifier, nothing logs it. Written by `registryctl` (the operator's own
credentials); the function only reads (GetItem) and decrypts (kms:Decrypt).
"""

from __future__ import annotations

import base64
import re
import secrets
from collections.abc import Iterator
from typing import Any

from botocore.exceptions import ClientError

from ..records import AccessKey, Grant
from . import codec
from .backend import Backend, ConditionFailed

ACTIVE, REVOKED = "Active", "Revoked"
KEY_NAME = re.compile(r"[\w+=,.@-]{1,64}")  # IAM user names
ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9]{1,128}")  # what we accept to look up (issued: REGK + 16)
REGISTRY_ID = re.compile(r"[0-9]{12}")
# KMS answers these when a ciphertext is not ours or was moved to another item: not a valid key.
FOREIGN_CIPHERTEXT = ("InvalidCiphertextException", "IncorrectKeyException")


TABLE = "keys"  # the logical table (schema.TABLES): its name is its deployed construct's id, so it stays
# The encryption context of a secret's ciphertext: the function's kms:Decrypt grant requires exactly
# these keys (infra/api.py), so a ciphertext encrypted for anything else cannot be decrypted by it.
SECRET_CONTEXT_KEYS = ("access_key_id", "registry_id")


class AccessKeyError(Exception):
    """A key operation the operator asked for cannot be done (registryctl prints the message)."""


def new_access_key_id() -> str:
    return "REGK" + base64.b32encode(secrets.token_bytes(10)).decode()  # 20 characters, as AWS's


def new_secret() -> str:
    return base64.b64encode(secrets.token_bytes(30)).decode()  # 40 characters, as AWS's


def _grants_to_item(grants: tuple[Grant, ...]) -> list[dict[str, list[str]]]:
    return [{"actions": list(g.actions), "repositories": list(g.repositories)} for g in grants]


def _grants_from_item(raw: list[dict[str, Any]] | None) -> tuple[Grant, ...]:
    return tuple(Grant(tuple(g.get("actions") or ()), tuple(g.get("repositories") or ())) for g in raw or ())


def key_from_item(item: dict[str, Any], secret: str | None = None) -> AccessKey:
    return AccessKey(
        access_key_id=item["access_key_id"],
        registry_id=item["registry_id"],
        name=item["name"],
        grants=_grants_from_item(item.get("grants")),
        created_at=item.get("created_at", 0),
        active=item.get("status") == ACTIVE,
        secret=secret,
    )


def secret_context(registry_id: str, access_key_id: str) -> dict[str, str]:
    return {"access_key_id": access_key_id, "registry_id": registry_id}  # SECRET_CONTEXT_KEYS


class AccessKeyStore:
    """The keys table and the KMS key of the secrets. `kms_key`: the key registryctl encrypts with
    and the function names when decrypting (a ciphertext under any other key is refused)."""

    def __init__(self, backend: Backend, kms_key: str | None):
        self.backend, self.kms_key = backend, kms_key

    # --- the verifier's read ----------------------------------------------------------------------

    def get(self, access_key_id: str) -> AccessKey | None:
        """The active key with its secret in clear, or None (unknown, revoked, or not ours)."""
        if not ACCESS_KEY_ID.fullmatch(access_key_id):
            return None
        item = self.backend.get(TABLE, access_key_id)
        if not item or item.get("status") != ACTIVE or not item.get("secret_ciphertext"):
            return None
        request = {
            "CiphertextBlob": item["secret_ciphertext"],
            "EncryptionContext": secret_context(item["registry_id"], access_key_id),
        }
        if self.kms_key:
            request["KeyId"] = self.kms_key
        try:
            plaintext = self.backend.kms.decrypt(**request)["Plaintext"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in FOREIGN_CIPHERTEXT:
                return None
            raise
        return key_from_item(item, plaintext.decode("utf-8"))

    # --- the operator's writes (registryctl) ------------------------------------------------------

    def create(
        self,
        registry_id: str,
        name: str,
        grants: tuple[Grant, ...],
        now: float,
        access_key_id: str | None = None,
        secret: str | None = None,
    ) -> AccessKey:
        """Issue a key; returns it with its secret (shown once). An id/secret may be given (seeding)."""
        if not REGISTRY_ID.fullmatch(registry_id):
            raise AccessKeyError(f"a registry id has 12 digits, not {registry_id!r}")
        if not KEY_NAME.fullmatch(name):
            raise AccessKeyError(f"a key name has 1-64 characters of [A-Za-z0-9_+=,.@-], not {name!r}")
        if not grants:
            raise AccessKeyError("a key needs at least one grant")
        if not self.kms_key:
            raise AccessKeyError("no KMS key to encrypt the secret with (--kms-key or REGISTRY_KEYS_KMS_KEY)")
        access_key_id = access_key_id or new_access_key_id()
        if not ACCESS_KEY_ID.fullmatch(access_key_id):
            raise AccessKeyError("an access key id has 1-128 letters and digits")
        secret = secret or new_secret()
        ciphertext = self.backend.kms.encrypt(
            KeyId=self.kms_key,
            Plaintext=secret.encode("utf-8"),
            EncryptionContext=secret_context(registry_id, access_key_id),
        )["CiphertextBlob"]
        item = codec.item(
            access_key_id=access_key_id,
            registry_id=registry_id,
            name=name,
            grants=_grants_to_item(grants),
            status=ACTIVE,
            created_at=now,
            secret_ciphertext=ciphertext,
        )
        try:
            self.backend.write("put_item", TABLE, Item=item, ConditionExpression="attribute_not_exists(access_key_id)")
        except ConditionFailed:
            raise AccessKeyError(f"the access key id {access_key_id} exists already") from None
        return AccessKey(access_key_id, registry_id, name, grants, now, True, secret)

    def list(self, registry_id: str | None = None) -> Iterator[AccessKey]:
        """Every key (without secrets), optionally of one registry. A scan: the table is small."""
        for item in self.backend.scan(
            TABLE,
            filter_expression="registry_id = :r" if registry_id else None,
            values=codec.values(r=registry_id) if registry_id else None,
            projection="access_key_id, registry_id, #n, grants, #s, created_at",
            names={"#n": "name", "#s": "status"},
        ):
            yield key_from_item(item)

    def revoke(self, access_key_id: str, now: float) -> None:
        """Revoke for good: the secret's ciphertext is deleted, the item stays as a record."""
        try:
            self.backend.write(
                "update_item",
                TABLE,
                Key=self.backend.item_key(TABLE, access_key_id),
                UpdateExpression="SET #s = :revoked, revoked_at = :now REMOVE secret_ciphertext",
                ConditionExpression="attribute_exists(access_key_id)",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues=codec.values(revoked=REVOKED, now=now),
            )
        except ConditionFailed:
            raise AccessKeyError(f"no access key {access_key_id}") from None
