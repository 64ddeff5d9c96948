"""registryctl: the operator's command for the registry's access keys.

    python -m registryctl keys create --registry 123456789012 --name ci --grant push:team/*
    python -m registryctl keys list [--registry 123456789012]
    python -m registryctl keys revoke REGK...

It talks to the keys table (DynamoDB) and the secrets' KMS key with the operator's own AWS
credentials (boto3's default chain, `--profile`), never through the registry API. Where they are:
`--table`/`--kms-key`, else REGISTRY_KEYS_TABLE/REGISTRY_KEYS_KMS_KEY, else `--stack <name>` (the
deployed stack's outputs, or its function's environment). `--endpoint-url` or boto3's
AWS_ENDPOINT_URL_DYNAMODB/AWS_ENDPOINT_URL_KMS point it at emulators or the local stack.
"""

from .connection import KeyTarget, connect

__all__ = ["KeyTarget", "connect"]
