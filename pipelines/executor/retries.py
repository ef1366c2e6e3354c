"""A step's RetryPolicies, with SageMaker Pipelines' semantics.

Each policy names the failure types it matches (``Step.SERVICE_FAULT``,
``Step.THROTTLING``, ``SageMaker.JOB_INTERNAL_ERROR``, ``SageMaker.CAPACITY_ERROR``,
``SageMaker.RESOURCE_LIMIT``), waits ``IntervalSeconds`` before the first retry and
multiplies the wait by ``BackoffRate`` each time, and stops after ``MaxAttempts``
attempts or once ``ExpireAfterMin`` minutes have passed since the first attempt.
A job's own error (AlgorithmError) and a ValidationException are never retried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

STEP_TYPES = frozenset({"Step.SERVICE_FAULT", "Step.THROTTLING"})
JOB_TYPES = frozenset(
    {"SageMaker.JOB_INTERNAL_ERROR", "SageMaker.CAPACITY_ERROR", "SageMaker.RESOURCE_LIMIT"}
)
# The failure reasons' prefixes that belong to each type, locally.
_REASON_TYPES: dict[str, tuple[str, ...]] = {
    "Step.SERVICE_FAULT": ("InternalError", "ServiceUnavailable", "InternalFailure"),
    "Step.THROTTLING": ("ThrottlingException", "Throttling", "SlowDown"),
    "SageMaker.JOB_INTERNAL_ERROR": ("InternalServerError", "InternalError"),
    "SageMaker.CAPACITY_ERROR": ("CapacityError", "InsufficientInstanceCapacity"),
    "SageMaker.RESOURCE_LIMIT": ("ResourceLimitExceeded",),
}


@dataclass(frozen=True)
class RetryPolicy:
    exception_types: tuple[str, ...]
    interval_seconds: float = 1.0
    backoff_rate: float = 2.0
    max_attempts: int | None = None
    expire_after_minutes: float | None = None

    @classmethod
    def from_request(cls, request: Mapping[str, Any]) -> RetryPolicy:
        return cls(
            exception_types=tuple(request.get("ExceptionType", [])),
            interval_seconds=float(request.get("IntervalSeconds", 1)),
            backoff_rate=float(request.get("BackoffRate", 2.0)),
            max_attempts=request.get("MaxAttempts"),
            expire_after_minutes=request.get("ExpireAfterMin"),
        )

    def matches(self, reason: str) -> bool:
        return any(
            reason.startswith(prefix)
            for kind in self.exception_types
            for prefix in _REASON_TYPES.get(kind, ())
        )

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first)."""
        return self.interval_seconds * self.backoff_rate ** (retry - 1)

    def allows(self, attempts_made: int, seconds_since_first: float) -> bool:
        if self.max_attempts is not None and attempts_made >= self.max_attempts:
            return False
        if self.expire_after_minutes is not None:
            return seconds_since_first < self.expire_after_minutes * 60
        return True

    def describe(self) -> str:
        limit = (
            f"max {self.max_attempts} attempts"
            if self.max_attempts is not None
            else f"for {self.expire_after_minutes:g} min"
        )
        return (
            f"{', '.join(self.exception_types)}: every {self.interval_seconds:g} s "
            f"x {self.backoff_rate:g}, {limit}"
        )


def policies(step: Mapping[str, Any]) -> list[RetryPolicy]:
    return [RetryPolicy.from_request(item) for item in step.get("RetryPolicies") or []]


def next_delay(
    policies_: list[RetryPolicy], reason: str, attempts_made: int, seconds_since_first: float
) -> float | None:
    """Seconds to wait before retrying a failure, or None when no policy retries it."""
    for policy in policies_:
        if policy.matches(reason) and policy.allows(attempts_made, seconds_since_first):
            return policy.delay(attempts_made)
    return None


def policy_problems(requests: list[Mapping[str, Any]]) -> list[str]:
    """What SageMaker's CreatePipeline would reject in a step's RetryPolicies."""
    problems = []
    for index, request in enumerate(requests):
        types = request.get("ExceptionType") or []
        unknown = [t for t in types if t not in STEP_TYPES | JOB_TYPES]
        if not types or unknown:
            problems.append(f"[{index}] unknown or missing ExceptionType {unknown or types}")
        if "MaxAttempts" in request and "ExpireAfterMin" in request:
            problems.append(f"[{index}] sets both MaxAttempts and ExpireAfterMin")
        if not 1 <= float(request.get("IntervalSeconds", 1)) <= 43200:
            problems.append(f"[{index}] IntervalSeconds must be 1-43200")
        if float(request.get("BackoffRate", 2.0)) < 0:
            problems.append(f"[{index}] BackoffRate must not be negative")
        if "MaxAttempts" in request and not 1 <= int(request["MaxAttempts"]) <= 20:
            problems.append(f"[{index}] MaxAttempts must be 1-20")
        if "ExpireAfterMin" in request and not 0 <= int(request["ExpireAfterMin"]) <= 14400:
            problems.append(f"[{index}] ExpireAfterMin must be 0-14400")
    return problems
