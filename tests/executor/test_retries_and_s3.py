"""RetryPolicies' semantics, and S3Prefix matching as S3 does it."""

from __future__ import annotations

import contextlib

import pytest
from sagemaker.workflow.retry import (
    SageMakerJobExceptionTypeEnum,
    SageMakerJobStepRetryPolicy,
    StepExceptionTypeEnum,
    StepRetryPolicy,
)

from pipelines.core import s3io
from pipelines.executor import retries


def policy(sdk_policy) -> retries.RetryPolicy:
    """A policy as the SDK writes it into a step's RetryPolicies."""
    return retries.RetryPolicy.from_request(sdk_policy.to_request())


def test_a_matching_failure_is_retried_with_backoff_up_to_max_attempts():
    throttled = policy(
        StepRetryPolicy(
            exception_types=[StepExceptionTypeEnum.THROTTLING],
            interval_seconds=2,
            backoff_rate=3.0,
            max_attempts=3,
        )
    )
    reason = "ThrottlingException: uploading output 'train': Rate exceeded"
    assert retries.next_delay([throttled], reason, 1, 0.0) == 2
    assert retries.next_delay([throttled], reason, 2, 2.0) == 6
    assert retries.next_delay([throttled], reason, 3, 8.0) is None  # three attempts made


def test_failures_a_policy_does_not_name_are_not_retried():
    service = policy(StepRetryPolicy(exception_types=[StepExceptionTypeEnum.SERVICE_FAULT]))
    assert retries.next_delay([service], "AlgorithmError: ERROR: bad input", 1, 0) is None
    assert retries.next_delay([service], "ValidationException: CreateModelPackage", 1, 0) is None
    assert retries.next_delay([service], "InternalError: S3 failed", 1, 0) == 1


def test_expire_after_minutes_bounds_the_retries_in_time():
    job = policy(
        SageMakerJobStepRetryPolicy(
            exception_types=[SageMakerJobExceptionTypeEnum.CAPACITY_ERROR], expire_after_mins=1
        )
    )
    reason = "CapacityError: no capacity for ml.m5.large"
    assert retries.next_delay([job], reason, 5, 59.0) == 16  # 1 x 2^4
    assert retries.next_delay([job], reason, 5, 61.0) is None


def test_invalid_policies_are_reported():
    problems = retries.policy_problems(
        [
            {"ExceptionType": ["Step.NOPE"], "IntervalSeconds": 0},
            {"ExceptionType": ["Step.THROTTLING"], "MaxAttempts": 2, "ExpireAfterMin": 5},
        ]
    )
    assert problems == [
        "[0] unknown or missing ExceptionType ['Step.NOPE']",
        "[0] IntervalSeconds must be 1-43200",
        "[1] sets both MaxAttempts and ExpireAfterMin",
    ]


@pytest.fixture
def bucket(emulator_connection):
    s3 = emulator_connection.client("s3")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket="prefix-tests")
    for key in (
        "data/train/a.csv",
        "data/train.csv.bak",
        "data/train_extra/b.csv",
        "data/other.csv",
        "data/tra.csv",
    ):
        s3.put_object(Bucket="prefix-tests", Key=key, Body=b"x")
    return s3


def test_s3_prefix_is_a_raw_key_prefix_as_in_s3(bucket, tmp_path):
    found = s3io.download(bucket, "s3://prefix-tests/data/train", tmp_path)
    assert [(o.key, o.relative) for o in found] == [
        ("data/train.csv.bak", "train.csv.bak"),
        ("data/train/a.csv", "a.csv"),
        ("data/train_extra/b.csv", "train_extra/b.csv"),
    ]
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.*")) == [
        "a.csv",
        "train.csv.bak",
        "train_extra/b.csv",
    ]


def test_a_trailing_slash_names_only_the_folder(bucket):
    found = s3io.list_objects(bucket, "s3://prefix-tests/data/train/")
    assert [o.relative for o in found] == ["a.csv"]
