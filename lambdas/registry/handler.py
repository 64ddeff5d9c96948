"""The Lambda entry point: API Gateway proxy event -> one ECR operation -> proxy response.

Read the request, verify its SigV4 signature (before any other work), find the operation, check
the input against the ECR model and the key's grants, run it (`operations.run` checks the
repository's policy first), render the result. Every failure leaves through `wire.error_response`;
only a genuine fault is a 500.
"""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit

from . import auth, distribution, errors, operations, wire
from .config import MAX_RETURNED_BYTES, METRICS_NAMESPACE, SERVICE_NAME, Settings
from .errors import EcrError, ServerException, UnknownOperationException
from .operations import Caller, Context
from .storage import RegistryStore

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer
    from aws_lambda_powertools.utilities.typing import LambdaContext

Handler = Callable[[dict[str, Any], "LambdaContext"], dict[str, Any]]

# Powertools' names come from the environment the stack sets; the defaults serve a handler run
# without it (in-process benchmarks and tests).
SERVICE = os.environ.get("POWERTOOLS_SERVICE_NAME") or SERVICE_NAME
logger = Logger(service=SERVICE)
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE") or METRICS_NAMESPACE, service=SERVICE)
# The X-Ray SDK costs ~0.35 s of import at every cold start: load it only when traces are sent.
TRACING = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() not in ("1", "true")
tracer: Tracer | None = None
if TRACING:
    from aws_lambda_powertools import Tracer

    tracer = Tracer(service=SERVICE)
    traced = tracer.capture_lambda_handler(capture_response=False)
else:

    def traced(handler: Handler) -> Handler:
        return handler


_store: RegistryStore | None = None
_access_keys: auth.AccessKeyCache | None = None


def store() -> RegistryStore:
    """The store of this execution environment: clients are made once, at the first request."""
    global _store
    if _store is None:
        _store = RegistryStore(Settings.from_environment())
        gc.freeze()  # its clients and their models live as long as the environment (see the end)
    return _store


def access_keys() -> auth.AccessKeyCache:
    """Verified access keys, kept in memory for REGISTRY_KEY_CACHE_SECONDS: a warm function
    verifies a known key with no network round trip."""
    global _access_keys
    if _access_keys is None:
        registry = store()
        _access_keys = auth.AccessKeyCache(registry.access_keys.get, registry.settings.access_key_cache_seconds)
    return _access_keys


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@metrics.log_metrics
@traced
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if event.get("type") == "REQUEST" and "methodArn" in event:  # API Gateway's authorizer of /v2
        return distribution.authorize(event, store(), access_keys())
    request = wire.http_request(event)
    started = time.perf_counter()
    if distribution.is_distribution_path(request.path):
        response, operation = distribution.serve(request, store(), access_keys(), store().settings)
        outcome, key_id = str(response["statusCode"]), None
    else:
        response, operation, outcome, key_id = _ecr_api(request)
    elapsed_ms = round((time.perf_counter() - started) * 1000, 1)
    logger.info(
        "request",
        extra={
            "operation": operation,
            "outcome": outcome,
            "ms": elapsed_ms,
            "status": response["statusCode"],
            "access_key_id": key_id,
            "source_ip": request.source_ip,
        },
    )
    metrics.add_metric(
        name="Faults"
        if response["statusCode"] >= 500
        else "ClientErrors"
        if response["statusCode"] >= 400
        else "Successes",
        unit=MetricUnit.Count,
        value=1,
    )
    return response


def _ecr_api(request: wire.HttpRequest) -> tuple[dict[str, Any], str, str, str | None]:
    """One request of the ECR API (AWS JSON 1.1): (response, operation, outcome, access key id)."""
    operation = "Unknown"
    key_id = None
    try:
        registry = store()
        caller = Caller.of(auth.authenticate(request, access_keys(), registry.settings.region))
        key_id = caller.access_key_id
        operation = wire.operation_name(request)
        operation_function = operations.served(operation, registry.settings)
        if operation_function is None:
            raise UnknownOperationException(f"Operation {operation} is not supported by this registry")
        params = wire.read_params(request, operation)
        endpoint = registry.settings.public_url or request.base_url()
        authorized_as = operations.AUTHORIZED_AS.get(operation, operation)
        ctx = Context.authorized(authorized_as, caller, params, registry, registry.settings, endpoint)
        if tracer is not None:
            tracer.put_annotation("operation", operation)
        response = wire.ok_response(operations.run(operation_function, params, ctx), request.request_id)
        outcome = "OK"
    except wire.ResponseTooLarge as too_large:  # the operations budget their answers: a backstop
        error = errors.response_too_large("The response's items", MAX_RETURNED_BYTES)
        response, outcome = wire.error_response(error, request.request_id), error.code
        logger.error("response too large", extra={"operation": operation, "bytes": too_large.size})
    except EcrError as error:
        response, outcome = wire.error_response(error, request.request_id), error.code
        if error.status >= 500:
            logger.error("fault", extra={"operation": operation, "code": error.code})
    except Exception:
        logger.exception("unhandled fault", extra={"operation": operation})
        response = wire.error_response(ServerException("An internal error occurred"), request.request_id)
        outcome = "ServerException"
    return response, operation, outcome, key_id


# Everything imported so far lives as long as the execution environment. Moved out of the garbage
# collector's sight, it is not rescanned by every full collection: at a cold start, loading the
# service models of the first clients triggers several, each walking every object (~30 ms apiece).
gc.freeze()
