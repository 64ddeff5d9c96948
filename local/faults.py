"""Fault injection at the storage boundary, for tests: botocore event hooks on the handler's own
clients make chosen DynamoDB/S3 calls fail, before they are sent or after they succeeded (a lost
response). Rules live in a JSON file the test rewrites; every worker process reads it.

    [{"service": "s3", "operation": "PutObject", "when": "before",
      "code": "KMS.DisabledException", "message": "...", "status": 400,
      "match": {"SSEKMSKeyId": "arn:..."},   # optional: request parameters that must be equal
      "times": 1}]                            # optional: how many calls fail (shared by workers)
"""

from __future__ import annotations

import fcntl
import json
import os

from botocore.exceptions import ClientError


def install(clients: list, rules_path: str) -> None:
    for client in clients:
        service = client.meta.service_model.service_name
        events = client.meta.events
        events.register(f"before-parameter-build.{service}", _before(rules_path, service))
        events.register(f"after-call.{service}", _after(rules_path, service))


def _before(rules_path: str, service: str):
    def handler(params, model, context, **kwargs):
        context["fault_params"] = dict(params)
        _maybe_fail(rules_path, service, model.name, "before", params)
    return handler


def _after(rules_path: str, service: str):
    def handler(model, context, parsed=None, http_response=None, **kwargs):
        if http_response is not None and http_response.status_code < 300:
            _maybe_fail(rules_path, service, model.name, "after", context.get("fault_params") or {})
    return handler


def _maybe_fail(rules_path: str, service: str, operation: str, when: str, params: dict) -> None:
    rule = _take(rules_path, service, operation, when, params)
    if rule is not None:
        raise ClientError({"Error": {"Code": rule["code"], "Message": rule.get("message", "injected fault")},
                           "ResponseMetadata": {"HTTPStatusCode": rule.get("status", 500)}}, operation)


def _take(path: str, service: str, operation: str, when: str, params: dict) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path, "r+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # workers are processes: the file is the shared counter
        try:
            rules = json.loads(handle.read() or "[]")
        except ValueError:
            return None
        for rule in rules:
            if (rule.get("service"), rule.get("operation"), rule.get("when", "before")) != (service, operation, when):
                continue
            if any(params.get(k) != v for k, v in (rule.get("match") or {}).items()):
                continue
            if "times" in rule:
                if rule["times"] <= 0:
                    continue
                rule["times"] -= 1
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(rules))
            return rule
    return None
