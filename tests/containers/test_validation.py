"""The request validator: what botocore's own validator lets through, too."""

from __future__ import annotations

from pipelines.executor.validation import UNRESOLVED, validate_request

PROCESSING = {
    "ProcessingJobName": "job",
    "RoleArn": "arn:aws:iam::123456789012:role/r",
    "AppSpecification": {"ImageUri": "image:1", "ContainerEntrypoint": ["python3", "-c", "1\n2"]},
    "ProcessingResources": {
        "ClusterConfig": {"InstanceCount": 1, "InstanceType": "ml.m5.large", "VolumeSizeInGB": 30}
    },
}


def cluster(**changes) -> dict:
    request = {**PROCESSING, "ProcessingResources": {"ClusterConfig": {}}}
    request["ProcessingResources"]["ClusterConfig"] = {
        **PROCESSING["ProcessingResources"]["ClusterConfig"],
        **changes,
    }
    return request


def test_a_valid_request_passes():
    assert validate_request("CreateProcessingJob", PROCESSING) == []


def test_ranges_and_enums_are_checked():
    assert validate_request("CreateProcessingJob", cluster(InstanceCount=0)) == [
        "ProcessingResources.ClusterConfig.InstanceCount: 0, below the minimum of 1"
    ]
    (problem,) = validate_request("CreateProcessingJob", cluster(InstanceType="ml.bogus.huge"))
    assert problem.startswith(
        "ProcessingResources.ClusterConfig.InstanceType: 'ml.bogus.huge' is not one of"
    )


def test_maximum_lengths_and_patterns_botocore_skips_are_checked():
    request = {
        "ModelPackageGroupName": "group",
        "ModelPackageDescription": "x" * 5000,
        "InferenceSpecification": {
            "Containers": [{"Image": "an image with spaces"}],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
    }
    problems = validate_request("CreateModelPackage", request)
    assert "ModelPackageDescription: 5000 characters, above the maximum of 1024" in problems
    assert any(
        p.startswith("InferenceSpecification.Containers[0].Image: 'an image with spaces' does not")
        for p in problems
    )


def test_required_unknown_and_typed_fields():
    problems = validate_request(
        "CreateModelPackage",
        {"ModelApprovalStatus": "Maybe", "Bogus": 1, "CertifyForMarketplace": "yes"},
    )
    assert "Bogus: unknown field" in problems
    assert any(p.startswith("ModelApprovalStatus: 'Maybe' is not one of") for p in problems)
    assert "CertifyForMarketplace: expected true or false, got 'yes'" in problems


def test_values_known_only_at_run_time_are_left_for_then():
    assert validate_request("CreateProcessingJob", cluster(InstanceType=UNRESOLVED)) == []
