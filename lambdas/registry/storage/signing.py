"""The registry's token key: what `tokens.seal` signs with (page tokens, and the passwords of
GetAuthorizationToken).

It is derived once per execution environment from the stack's KMS HMAC key: KMS computes
HMAC(key, DERIVATION) and the result, which only KMS can produce, serves as the signing key in
memory. The KMS key never leaves KMS; every environment derives the same token key, so a token
issued by one is verified by any other; one KMS call per cold start, and only when a token is
first needed.
"""

from __future__ import annotations

from .backend import Backend

DERIVATION = b"serverless-ecr-registry/token-key/v1"
MAC_ALGORITHM = "HMAC_SHA_256"


class TokenKey:
    def __init__(self, backend: Backend, kms_key: str | None):
        self.backend, self.kms_key = backend, kms_key
        self._key: bytes | None = None

    def get(self) -> bytes:
        if self._key is None:
            if not self.kms_key:
                raise RuntimeError("no token KMS key configured (REGISTRY_TOKEN_KMS_KEY): cannot issue tokens")
            response = self.backend.kms.generate_mac(KeyId=self.kms_key, Message=DERIVATION, MacAlgorithm=MAC_ALGORITHM)
            self._key = bytes(response["Mac"])
        return self._key
