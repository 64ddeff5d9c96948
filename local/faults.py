"""Fault injection at the storage boundary, for tests: botocore event hooks on the handler's own
clients make chosen DynamoDB/S3 calls fail. Rules live in a JSON file the test rewrites; every
worker process reads it.

    [{"service": "s3", "operation": "PutObject", "when": "before",
      "code": "KMS.DisabledException", "message": "...", "status": 400,
      "match": {"SSEKMSKeyId": "arn:..."},   # optional: request parameters that must be equal
      "skip": 0,                              # optional: let this many matching calls through first
      "times": 1}]                            # optional: how many calls fail (shared by workers)

`when` says where the fault strikes:

- "before": the call fails before anything is sent (a ClientError with `code`/`status`), outside
  botocore's retries: the handler sees the error at once.
- "after": the call succeeded but its response is lost (a ClientError), outside botocore's retries.
- "send": at the HTTP layer, *inside* botocore's retry loop, so the handler's retry policy applies
  as it would against AWS. `error` chooses what happens to one attempt:
    "status"  (default) the service answers `status` with error `code` (ProvisionedThroughputExceeded,
              SlowDown, InternalServerError ...), nothing is executed;
    "timeout" the attempt times out before the service saw it (ReadTimeoutError);
    "lost"    the request IS executed, then its response is lost (ReadTimeoutError): botocore sends
              it again against the state it changed.
  Each failing attempt consumes one of `times`; without `times` every attempt fails until the
  rules change.
- "crash" (with "when": "after"): the worker process dies right after the call succeeded, as a
  Lambda that hits its timeout: no line of the handler after that call runs.

With REGISTRY_FAULTS_JOURNAL naming a file, every call is appended to it as a JSON line
(`{"service", "operation", "table", "ok"}`: one line when the call starts, one more when it
succeeded), so a
test can enumerate the calls an operation makes and then inject a fault at each of them.

Retries are immediate in a process with faults installed (botocore's backoff and retry quota are
switched off), so a test does not wait seconds per injected throttle.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import threading

from botocore.exceptions import ClientError, ReadTimeoutError

_current = threading.local()  # the parameters of the call in flight, for "send" rules' `match`


def install(clients: list, rules_path: str) -> None:
    _immediate_retries()
    journal = os.environ.get("REGISTRY_FAULTS_JOURNAL")
    for client in clients:
        service = client.meta.service_model.service_name
        events = client.meta.events
        events.register(f"before-parameter-build.{service}", _before(rules_path, service, journal))
        events.register(f"after-call.{service}", _after(rules_path, service, journal))
        events.register_first(
            f"before-send.{client.meta.service_model.service_id.hyphenize()}",
            _send(rules_path, service, client.meta.service_model.protocol),
        )


def _immediate_retries() -> None:
    from botocore.retries import standard

    standard.ExponentialBackoff.delay_amount = lambda self, context: 0.0
    standard.RetryQuotaChecker.acquire_retry_quota = lambda self, context: True


def _record(journal: str | None, service: str, operation: str, ok: bool, params: dict) -> None:
    if journal:
        line = {"service": service, "operation": operation, "ok": ok, "table": params.get("TableName")}
        with open(journal, "a") as handle:
            handle.write(json.dumps(line) + "\n")


def _before(rules_path: str, service: str, journal: str | None = None):
    def handler(params, model, context, **kwargs):
        context["fault_params"] = dict(params)
        _current.params = dict(params)
        _record(journal, service, model.name, False, params)
        _maybe_fail(rules_path, service, model.name, "before", params)

    return handler


def _after(rules_path: str, service: str, journal: str | None = None):
    def handler(model, context, parsed=None, http_response=None, **kwargs):
        if http_response is not None and http_response.status_code < 300:
            _record(journal, service, model.name, True, context.get("fault_params") or {})
            _maybe_fail(rules_path, service, model.name, "after", context.get("fault_params") or {})

    return handler


def _send(rules_path: str, service: str, protocol: str):
    def handler(request, event_name, **kwargs):
        operation = event_name.rsplit(".", 1)[-1]
        rule = _take(rules_path, service, operation, "send", getattr(_current, "params", None) or {})
        if rule is None:
            return None
        error = rule.get("error", "status")
        if error == "timeout":
            raise ReadTimeoutError(endpoint_url=request.url)
        if error == "lost":
            from botocore.httpsession import URLLib3Session

            URLLib3Session(timeout=60).send(request)  # executed for real; the answer never arrives
            raise ReadTimeoutError(endpoint_url=request.url)
        return _error_response(request.url, protocol, rule)

    return handler


class _Raw(io.BytesIO):
    def stream(self, **kwargs):
        yield self.getvalue()


def _error_response(url: str, protocol: str, rule: dict):
    from botocore.awsrequest import AWSResponse

    code, message = rule["code"], rule.get("message", "injected fault")
    if protocol in ("rest-xml", "query"):
        body = (
            f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
            f"<Message>{message}</Message><RequestId>injected</RequestId></Error>"
        ).encode()
        headers = {"Content-Type": "application/xml", "x-amz-request-id": "injected"}
    else:
        body = json.dumps({"__type": code, "message": message}).encode()
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "injected"}
    headers["Content-Length"] = str(len(body))
    return AWSResponse(url, rule.get("status", 500), headers, _Raw(body))


def _maybe_fail(rules_path: str, service: str, operation: str, when: str, params: dict) -> None:
    rule = _take(rules_path, service, operation, when, params)
    if rule is None:
        return
    if rule.get("error") == "crash":
        os._exit(70)
    raise ClientError(
        {
            "Error": {"Code": rule["code"], "Message": rule.get("message", "injected fault")},
            "ResponseMetadata": {"HTTPStatusCode": rule.get("status", 500)},
        },
        operation,
    )


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
            if rule.get("skip", 0) > 0 or "times" in rule:
                if rule.get("skip", 0) > 0:
                    rule["skip"] -= 1
                    chosen = None
                elif rule["times"] <= 0:
                    continue
                else:
                    rule["times"] -= 1
                    chosen = rule
                handle.seek(0)
                handle.truncate()
                handle.write(json.dumps(rules))
                return chosen
            return rule
    return None
