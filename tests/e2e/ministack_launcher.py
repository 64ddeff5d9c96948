"""Start ministack (run by .ministack-venv's python, see ministack_harness.py) with the two things it
lacks that the deployed stack relies on: the encryption context of KMS requests as IAM condition keys,
and alarms on metric math or Metrics Insights queries.

AWS KMS hands IAM a request's encryption context as `kms:EncryptionContextKeys` (multi-valued) and
`kms:EncryptionContext:<key>`; ministack 1.5.33 supplies neither. The function's kms:Decrypt on the
access keys' KMS key requires both context keys to be present (`Null: false`), so without this every
Decrypt would be denied; and a condition that merely limits the keys (`ForAllValues`) would pass on
an absent context there, checking nothing. Here they are taken from the request body, as AWS does,
and added to the context ministack already builds for the request (its aws:RequestTag keys);
everything else is ministack's own.

ministack 1.5.33 refuses an AWS::CloudWatch::Alarm with `Metrics` (metric math, Metrics Insights),
which the stack's DynamoDB alarms are. Here such an alarm is recorded as PutMetricAlarm records it
(DescribeAlarms returns its Metrics), and left unevaluated: ministack evaluates single-metric alarms
only (it skips an alarm without MetricName). Every other alarm is ministack's own record.

A ministack that no longer has either hook fails at start.
"""

from __future__ import annotations

import json
import sys

from ministack import app
from ministack.core import iam_actions
from ministack.services.cloudformation import provisioners

_request_tag_context = iam_actions.request_tag_context  # AttributeError here: the hook moved
_metric_alarm_record = provisioners._cw_metric_alarm_record  # likewise
# What DescribeAlarms shows of a single-metric alarm only.
_SINGLE_METRIC_FIELDS = ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Period", "Dimensions", "Unit")


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


def metric_alarm_record(name: str, props: dict) -> dict:
    metrics = props.get("Metrics")
    if not metrics:
        return _metric_alarm_record(name, props)
    single = {k: v for k, v in props.items() if k != "Metrics"}
    record = _metric_alarm_record(name, {**single, "MetricName": "-", "Namespace": "-"})
    for key in _SINGLE_METRIC_FIELDS:
        record.pop(key, None)
    return {**record, "Metrics": metrics}


provisioners._cw_metric_alarm_record = metric_alarm_record  # looked up per call, from the module

if __name__ == "__main__":
    sys.argv[1:] = []
    sys.exit(app.main())
