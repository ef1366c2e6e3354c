"""Alerts, as CloudWatch alarms on the drift metrics would raise them, then the user's hooks.

Each feature has an alarm (named as Terraform names it on AWS, ``<endpoint>-drift-<feature>``)
on ``feature_baseline_drift_<feature>`` above the threshold; model quality has one per metric.
Like CloudWatch, an alarm notifies when it *changes* into ALARM: a feature that keeps drifting
run after run alerts once. The notification is CloudWatch's alarm message (the JSON SNS
delivers), plus the execution's violations; it goes to:

* ``mlops.monitoring.alert_command``: a command (argv list or string), the JSON on its stdin;
* ``mlops.monitoring.alert_webhook``: an http(s) URL on loopback or a private network (the
  user's), POSTed as ``application/json``. A public address is refused: violations describe
  production traffic.
"""

from __future__ import annotations

import ipaddress
import json
import shlex
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pipelines.core.errors import MlopsError
from pipelines.monitoring.drift import FeatureDrift
from pipelines.monitoring.outputs import DATA_METRICS_NAMESPACE, MODEL_METRICS_NAMESPACE, dimensions

ALARM, OK = "ALARM", "OK"
INSUFFICIENT = "INSUFFICIENT_DATA"
Json = dict[str, Any]


def drift_alarm_name(endpoint: str, feature: str) -> str:
    return f"{endpoint}-drift-{feature}"


def quality_alarm_name(endpoint: str, metric: str) -> str:
    return f"{endpoint}-model-quality-{metric}"


@dataclass(frozen=True)
class AlarmChange:
    name: str
    old: str
    new: str
    reason: str
    trigger: Json


def alarm_states(record: Json | None) -> dict[str, str]:
    return dict((record or {}).get("alarms", {}))


def evaluate_alarms(
    endpoint: str,
    schedule: str,
    drifts: Sequence[FeatureDrift],
    quality_violations: Sequence[Json],
    quality_values: dict[str, float],
    previous: dict[str, str],
    when: datetime,
) -> tuple[dict[str, str], list[AlarmChange]]:
    """The new state of every alarm, and the changes since the previous execution."""
    stamp = when.strftime("%d/%m/%y %H:%M:%S")
    states: dict[str, str] = {}
    changes: list[AlarmChange] = []

    def settle(name: str, breached: bool, value: float, threshold: float, trigger: Json) -> None:
        new = ALARM if breached else OK
        states[name] = new
        old = previous.get(name, INSUFFICIENT)
        if new == ALARM and old != ALARM:
            comparison = (
                "less than" if trigger["ComparisonOperator"].startswith("Less") else "greater than"
            )
            reason = (
                f"Threshold Crossed: 1 datapoint [{value:.4g} ({stamp})] was {comparison} the "
                f"threshold ({threshold:g})."
            )
            changes.append(AlarmChange(name, old, new, reason, trigger))

    for drift in drifts:
        if drift.distance is None:
            continue
        trigger = {
            "MetricName": f"feature_baseline_drift_{drift.name}",
            "Namespace": DATA_METRICS_NAMESPACE,
            "Statistic": "MAXIMUM",
            "Dimensions": [
                {"name": d["Name"], "value": d["Value"]}
                for d in dimensions(endpoint, schedule, drift.name)
            ],
            "Period": 3600,
            "EvaluationPeriods": 1,
            "ComparisonOperator": "GreaterThanThreshold",
            "Threshold": drift.threshold,
        }
        settle(
            drift_alarm_name(endpoint, drift.name),
            "baseline_drift_check" in drift.violations,
            drift.distance,
            drift.threshold,
            trigger,
        )
    for violation in quality_violations:
        metric = violation["metric_name"]
        threshold = float(violation.get("threshold", 0.0))
        trigger = {
            "MetricName": metric,
            "Namespace": MODEL_METRICS_NAMESPACE,
            "Statistic": "MAXIMUM"
            if violation["constraint_check_type"].startswith("Greater")
            else "MINIMUM",
            "Dimensions": [
                {"name": d["Name"], "value": d["Value"]} for d in dimensions(endpoint, schedule)
            ],
            "Period": 3600,
            "EvaluationPeriods": 1,
            "ComparisonOperator": violation["constraint_check_type"],
            "Threshold": threshold,
        }
        settle(
            quality_alarm_name(endpoint, metric),
            True,
            quality_values.get(metric, 0.0),
            threshold,
            trigger,
        )
    for metric in quality_values:
        name = quality_alarm_name(endpoint, metric)
        states.setdefault(name, OK)
    return states, changes


def alarm_message(change: AlarmChange, region: str, account: str, when: datetime) -> Json:
    """CloudWatch's alarm state-change message, as SNS delivers it."""
    return {
        "AlarmName": change.name,
        "AlarmDescription": f"Model Monitor: {change.trigger['MetricName']} of the endpoint",
        "AWSAccountId": account,
        "NewStateValue": change.new,
        "NewStateReason": change.reason,
        "StateChangeTime": when.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
        "Region": region,
        "AlarmArn": f"arn:aws:cloudwatch:{region}:{account}:alarm:{change.name}",
        "OldStateValue": change.old,
        "Trigger": change.trigger,
    }


def render(message: Json) -> str:
    """The e-mail form of the notification (what a person subscribed to the topic reads)."""
    trigger = message["Trigger"]
    dims = ", ".join(f"{d['name']}={d['value']}" for d in trigger["Dimensions"])
    return "\n".join(
        [
            f'{message["NewStateValue"]}: "{message["AlarmName"]}" in {message["Region"]}',
            f"  State change: {message['OldStateValue']} -> {message['NewStateValue']} "
            f"at {message['StateChangeTime']}",
            f"  Reason: {message['NewStateReason']}",
            f"  Metric: {trigger['Namespace']} {trigger['MetricName']} ({dims}), "
            f"{trigger['ComparisonOperator']} {trigger['Threshold']:g}",
        ]
    )


# --- hooks ----------------------------------------------------------------------------------


def _command(value: Any) -> list[str]:
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise MlopsError(f"mlops.monitoring.alert_command must be a string or a list, got {value!r}.")


def check_webhook(url: str) -> str:
    """The URL, when it is http(s) to loopback or a private network; else a clear error."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise MlopsError(f"mlops.monitoring.alert_webhook must be an http(s) URL, got {url!r}.")
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parsed.hostname, parsed.port or 80)}
    except OSError as error:
        raise MlopsError(
            f"The alert webhook host {parsed.hostname} does not resolve: {error}"
        ) from error
    for address in addresses:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
        if not (ip.is_loopback or ip.is_private or ip.is_link_local):
            raise MlopsError(
                f"The alert webhook {url} resolves to the public address {ip}: only loopback or "
                "private-network receivers get violations. Use SNS (the AWS target) to reach "
                "anything else."
            )
    return url


@dataclass(frozen=True)
class HookResult:
    target: str
    ok: bool
    detail: str


def call_hooks(
    payload: Json, command: Any = None, webhook: str | None = None, timeout: float = 10.0
) -> list[HookResult]:
    body = json.dumps(payload, sort_keys=True).encode()
    results: list[HookResult] = []
    if command:
        argv = _command(command)
        try:
            done = subprocess.run(
                argv, input=body, capture_output=True, timeout=timeout, check=False
            )
            results.append(
                HookResult(
                    " ".join(argv),
                    done.returncode == 0,
                    f"exit {done.returncode}"
                    + (
                        f": {done.stderr.decode(errors='replace')[-300:]}"
                        if done.returncode
                        else ""
                    ),
                )
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            results.append(HookResult(" ".join(argv), False, str(error)))
    if webhook:
        url = check_webhook(webhook)
        request = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
                results.append(
                    HookResult(url, 200 <= response.status < 300, f"HTTP {response.status}")
                )
        except (urllib.error.URLError, OSError) as error:
            results.append(HookResult(url, False, str(error)))
    return results
