"""Alerts, as CloudWatch alarms on the drift metrics would raise them, then the user's hooks.

Each feature has an alarm (named as Terraform names it on AWS, ``<endpoint>-drift-<feature>``)
on ``feature_baseline_drift_<feature>`` above the threshold; model quality has one per metric.
Like CloudWatch, an alarm notifies when it *changes* into ALARM: a feature that keeps drifting
run after run alerts once. The notification is CloudWatch's alarm message (the JSON SNS
delivers), plus the execution's violations; it goes to:

* ``mlops.monitoring.alert_command``: a command (argv list or string), the JSON on its stdin;
* ``mlops.monitoring.alert_webhook``: an http(s) URL on loopback or a private network (the
  user's), POSTed as ``application/json``. A public address is refused: violations describe
  production traffic. So are link-local and cloud metadata addresses; the host is resolved
  once and the POST goes to the address that was checked; redirects are not followed and
  proxy variables are not read, so nothing leads the request past the check.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import shlex
import socket
import ssl
import subprocess
import urllib.parse
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


@dataclass(frozen=True)
class HookResult:
    target: str
    ok: bool
    detail: str


# Never a webhook target, though private or link-local: cloud instance metadata and DNS
# (AWS 169.254.169.254 / fd00:ec2::254, its resolver and time service, GCP and Azure on
# the same link-local addresses, Oracle's 192.0.0.192), and "this host" addresses.
_REFUSED_NETWORKS = tuple(
    ipaddress.ip_network(network)
    for network in (
        "169.254.0.0/16",
        "fe80::/10",
        "fd00:ec2::/32",
        "192.0.0.0/24",
        "0.0.0.0/8",
        "::/128",
    )
)


def _refusal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Why a webhook may not be sent to ``ip``; None when it may."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if any(ip in network for network in _REFUSED_NETWORKS) or ip.is_multicast:
        return f"the link-local, metadata or reserved address {ip}"
    if not (ip.is_loopback or ip.is_private):
        return f"the public address {ip}"
    return None


@dataclass(frozen=True)
class Webhook:
    """A checked webhook: where to connect (the address that was checked, never resolved
    again) and what to ask for there."""

    url: str
    scheme: str
    host: str
    port: int
    address: str
    path: str


def check_webhook(url: str) -> Webhook:
    """The URL, resolved once and checked: http(s) to loopback or a private network; else
    a clear error."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise MlopsError(f"mlops.monitoring.alert_webhook must be an http(s) URL, got {url!r}.")
    try:
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        infos = socket.getaddrinfo(parsed.hostname, port, type=socket.SOCK_STREAM)
    except (OSError, ValueError) as error:
        raise MlopsError(
            f"The alert webhook host {parsed.hostname} does not resolve: {error}"
        ) from error
    addresses = [info[4][0] for info in infos]
    for address in addresses:
        why = _refusal(ipaddress.ip_address(address.split("%", 1)[0]))
        if why is not None:
            raise MlopsError(
                f"The alert webhook {url} resolves to {why}: only loopback or "
                "private-network receivers get violations. Use SNS (the AWS target) to reach "
                "anything else."
            )
    path = parsed.path or "/"
    return Webhook(
        url,
        parsed.scheme,
        parsed.hostname,
        port,
        addresses[0],
        path + (f"?{parsed.query}" if parsed.query else ""),
    )


class _PinnedHTTPConnection(http.client.HTTPConnection):
    """Connects to the checked address; the Host header still names the URL's host."""

    def __init__(self, hook: Webhook, timeout: float) -> None:
        super().__init__(hook.host, hook.port, timeout=timeout)
        self._address = hook.address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """The same over TLS: the certificate is verified for the URL's host name."""

    def __init__(self, hook: Webhook, timeout: float) -> None:
        super().__init__(
            hook.host, hook.port, timeout=timeout, context=ssl.create_default_context()
        )
        self._address = hook.address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)  # type: ignore[attr-defined]


def post_webhook(url: str, body: bytes, timeout: float) -> HookResult:
    """POST ``body`` to the checked address. http.client, not urllib: it reads no proxy
    variables and follows no redirect (a redirect would lead past the check, so it is a
    failure that names where it pointed)."""
    hook = check_webhook(url)
    kind = _PinnedHTTPSConnection if hook.scheme == "https" else _PinnedHTTPConnection
    connection = kind(hook, timeout)
    try:
        connection.request(
            "POST", hook.path, body=body, headers={"Content-Type": "application/json"}
        )
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException) as error:
        return HookResult(url, False, str(error))
    finally:
        connection.close()
    if 300 <= response.status < 400:
        where = response.getheader("Location", "?")
        return HookResult(
            url, False, f"HTTP {response.status}: redirects are not followed (to {where})"
        )
    return HookResult(url, 200 <= response.status < 300, f"HTTP {response.status}")


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
        results.append(post_webhook(webhook, body, timeout))
    return results
