"""Start ministack (run by .ministack-venv's python, see ministack_harness.py) with the one thing it
lacks that the deployed stack relies on: the encryption context of KMS requests as IAM condition keys.

AWS KMS hands IAM a request's encryption context as `kms:EncryptionContextKeys` (multi-valued) and
`kms:EncryptionContext:<key>`; ministack 1.5.33 supplies neither. The function's kms:Decrypt on the
access keys' KMS key requires both context keys to be present (`Null: false`), so without this every
Decrypt would be denied; and a condition that merely limits the keys (`ForAllValues`) would pass on
an absent context there, checking nothing. Here they are taken from the request body, as AWS does,
and added to the context ministack already builds for the request (its aws:RequestTag keys);
everything else is ministack's own. A ministack that no longer has the hook fails at start.
"""

from __future__ import annotations

import json
import sys

from ministack import app
from ministack.core import iam_actions

_request_tag_context = iam_actions.request_tag_context  # AttributeError here: the hook moved


def kms_condition_keys(body: bytes) -> dict:
    try:
        data = json.loads(body or b"{}")
    except (json.JSONDecodeError, UnicodeDecodeError):
        return {}
    context = data.get("EncryptionContext") if isinstance(data, dict) else None
    if not isinstance(context, dict) or not context:
        return {}
    return {
        "kms:EncryptionContextKeys": sorted(context),
        **{f"kms:EncryptionContext:{key}": str(value) for key, value in context.items()},
    }


def request_context(service: str, iam_action: str, body: bytes, params: dict) -> dict:
    context = _request_tag_context(service, iam_action, body, params)
    if service == "kms":
        context = {**context, **kms_condition_keys(body)}
    return context


iam_actions.request_tag_context = request_context  # app.py imports it per request, from the module

if __name__ == "__main__":
    sys.argv[1:] = []
    sys.exit(app.main())
