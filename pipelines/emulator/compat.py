"""Fixes for the moto gaps that break Terraform's AWS provider or the pipeline tasks.

moto is pinned exactly in pyproject.toml because these patches reach into its
internals. Each patch below names the AWS API behaviour it restores; each has a
test in tests/emulator/test_compat.py that talks to a real emulator process over
HTTPS, so a moto upgrade that changes the internals fails loudly there.

Gaps handled elsewhere:
- AWS managed policies are only loaded with MOTO_IAM_LOAD_MANAGED_POLICIES=true;
  the server entrypoint sets it before moto is imported.
- Provider retries: the root module sets ``max_retries = 2`` for the emulator, so
  an unimplemented API fails in seconds instead of after ten minutes of retries.
"""

from __future__ import annotations

import contextvars
import fnmatch
import json
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from moto.codecommit.exceptions import RepositoryDoesNotExistException
from moto.codecommit.models import CodeCommit, CodeCommitBackend
from moto.codecommit.responses import CodeCommitResponse
from moto.core.responses import ActionResult, EmptyResult
from moto.core.utils import utcnow
from moto.iam.access_control import IAMPolicyStatement, PermissionResult
from moto.s3.models import FakeBucket
from moto.sagemaker.exceptions import ConflictException, ValidationError
from moto.sagemaker.models import SageMakerModelBackend
from moto.sagemaker.responses import SageMakerResponse

_APPLIED_MARKER = "_mlops_compat_applied"


@dataclass(frozen=True)
class Patch:
    name: str
    why: str
    apply: Callable[[], None]


# --- S3 bucket policy conditions -------------------------------------------------------

# The condition keys of the request being served; werkzeug serves each request in
# its own thread, and a context variable is per thread.
_REQUEST_CONDITIONS: contextvars.ContextVar[Mapping[str, str]] = contextvars.ContextVar(
    "mlops_request_conditions", default=MappingProxyType({})
)


def request_condition_keys(environ: Mapping[str, Any]) -> dict[str, str]:
    """The global condition keys AWS derives from the transport of a request."""
    keys = {"aws:SecureTransport": "true" if environ.get("wsgi.url_scheme") == "https" else "false"}
    protocol = str(environ.get("SSL_PROTOCOL", ""))  # e.g. "TLSv1.3", set by the TLS server
    if protocol.startswith("TLSv"):
        keys["s3:TlsVersion"] = protocol.removeprefix("TLSv")
    return keys


class RequestConditionsMiddleware:
    """WSGI middleware that publishes each request's condition keys to the patches."""

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        # moto rebuilds the URL from RAW_URI, which werkzeug and gunicorn set but cheroot
        # does not; without it moto uses the decoded path, and a key containing "?"
        # swallows the query string (GetObject's versionId was silently ignored).
        if "RAW_URI" not in environ and "REQUEST_URI" in environ:
            environ["RAW_URI"] = environ["REQUEST_URI"]
        token = _REQUEST_CONDITIONS.set(request_condition_keys(environ))
        try:
            return self.app(environ, start_response)
        finally:
            _REQUEST_CONDITIONS.reset(token)


def _operator(name: str) -> Callable[[str, str], bool] | None:
    def numeric(compare: Callable[[float, float], bool]) -> Callable[[str, str], bool]:
        def check(actual: str, expected: str) -> bool:
            try:
                return compare(float(actual), float(expected))
            except ValueError:
                return False

        return check

    return {
        "StringEquals": lambda a, e: a == e,
        "StringEqualsIgnoreCase": lambda a, e: a.lower() == e.lower(),
        "StringLike": fnmatch.fnmatchcase,
        "ArnEquals": lambda a, e: a == e,
        "ArnLike": fnmatch.fnmatchcase,
        "Bool": lambda a, e: a.lower() == e.lower(),
        "NumericEquals": numeric(lambda a, e: a == e),
        "NumericLessThan": numeric(lambda a, e: a < e),
        "NumericLessThanEquals": numeric(lambda a, e: a <= e),
        "NumericGreaterThan": numeric(lambda a, e: a > e),
        "NumericGreaterThanEquals": numeric(lambda a, e: a >= e),
    }.get(name)


_NEGATED = {
    "StringNotEquals": "StringEquals",
    "StringNotEqualsIgnoreCase": "StringEqualsIgnoreCase",
    "StringNotLike": "StringLike",
    "ArnNotEquals": "ArnEquals",
    "ArnNotLike": "ArnLike",
    "NumericNotEquals": "NumericEquals",
}


def conditions_match(conditions: Mapping[str, Any], context: Mapping[str, str]) -> bool:
    """IAM condition evaluation: every operator/key pair must hold; a key missing
    from the request fails its condition unless the operator ends in IfExists."""
    lowered = {key.lower(): value for key, value in context.items()}
    for raw_operator, pairs in conditions.items():
        operator = raw_operator.rpartition(":")[2]  # drop ForAnyValue:/ForAllValues:
        if_exists = operator.endswith("IfExists")
        operator = operator.removesuffix("IfExists")
        for key, expected in pairs.items():
            expected_values = [
                str(v) for v in (expected if isinstance(expected, list) else [expected])
            ]
            actual = lowered.get(key.lower())
            if operator == "Null":
                matched = (actual is None) == (expected_values[0].lower() == "true")
            elif actual is None:
                matched = if_exists
            elif operator in _NEGATED:
                check = _operator(_NEGATED[operator])
                matched = check is not None and not any(check(actual, e) for e in expected_values)
            else:
                check = _operator(operator)
                # An operator the emulator does not know is ignored, as moto does.
                matched = check is None or any(check(actual, e) for e in expected_values)
            if not matched:
                return False
    return True


def _s3_bucket_policy_conditions() -> None:
    """Evaluate bucket policy conditions like AWS: moto treats a condition it cannot
    evaluate as satisfied and an unsatisfied one as an explicit deny, so the
    TLS-only policy denied every object request, HTTPS included."""
    original_is_action_permitted = IAMPolicyStatement.is_action_permitted

    def is_action_permitted(
        self: IAMPolicyStatement,
        action: str,
        resource: str = "*",
        principal: str | None = None,
        incoming_condition_values: dict[str, str] | None = None,
    ) -> PermissionResult:
        conditions = self._statement.get("Condition")
        if conditions and not conditions_match(conditions, incoming_condition_values or {}):
            return PermissionResult.NEUTRAL  # the statement does not apply
        return original_is_action_permitted(
            self, action, resource, principal, incoming_condition_values
        )

    def check_conditions(
        self: IAMPolicyStatement, incoming_condition_values: dict[str, str] | None
    ) -> bool:
        conditions = self._statement.get("Condition")
        return not conditions or conditions_match(conditions, incoming_condition_values or {})

    def get_permission(self: FakeBucket, action: str, resource: str) -> Any:
        from moto.iam.access_control import IAMPolicy

        if self.policy is None:
            return PermissionResult.NEUTRAL
        policy = IAMPolicy(self.policy.decode())
        return policy.is_action_permitted(
            action, resource, incoming_condition_values=dict(_REQUEST_CONDITIONS.get())
        )

    IAMPolicyStatement.is_action_permitted = is_action_permitted  # type: ignore[method-assign]
    IAMPolicyStatement._check_conditions = check_conditions  # type: ignore[method-assign]
    FakeBucket.get_permission = get_permission  # type: ignore[method-assign]


# --- CodeCommit -------------------------------------------------------------------


def _codecommit_epoch_dates() -> None:
    """CodeCommit's JSON API returns creation/modification dates as epoch seconds."""
    original_init = CodeCommit.__init__

    def __init__(self: CodeCommit, *args: Any, **kwargs: Any) -> None:
        original_init(self, *args, **kwargs)
        now = time.time()
        self.repository_metadata["creationDate"] = now  # type: ignore[assignment]
        self.repository_metadata["lastModifiedDate"] = now  # type: ignore[assignment]
        self.tags: dict[str, str] = {}  # type: ignore[attr-defined]

    CodeCommit.__init__ = __init__  # type: ignore[method-assign]


def _find_repository_by_arn(backend: CodeCommitBackend, arn: str) -> CodeCommit:
    for repository in backend.repositories.values():
        if repository.repository_metadata["Arn"] == arn:
            return repository
    raise RepositoryDoesNotExistException(arn.rsplit(":", 1)[-1])


def _codecommit_tagging() -> None:
    """CodeCommit TagResource/UntagResource/ListTagsForResource and tags on create."""
    original_create = CodeCommitResponse.create_repository

    def create_repository(self: CodeCommitResponse) -> str:
        body = original_create(self)
        name = self._get_param("repositoryName")
        self.codecommit_backend.repositories[name].tags = dict(self._get_param("tags") or {})
        return body

    def tag_resource(self: CodeCommitResponse) -> str:
        repository = _find_repository_by_arn(
            self.codecommit_backend, self._get_param("resourceArn")
        )
        repository.tags.update(self._get_param("tags") or {})
        return "{}"

    def untag_resource(self: CodeCommitResponse) -> str:
        repository = _find_repository_by_arn(
            self.codecommit_backend, self._get_param("resourceArn")
        )
        for key in self._get_param("tagKeys") or []:
            repository.tags.pop(key, None)
        return "{}"

    def list_tags_for_resource(self: CodeCommitResponse) -> str:
        repository = _find_repository_by_arn(
            self.codecommit_backend, self._get_param("resourceArn")
        )
        return json.dumps({"tags": repository.tags})

    CodeCommitResponse.create_repository = create_repository  # type: ignore[method-assign]
    CodeCommitResponse.tag_resource = tag_resource  # type: ignore[attr-defined]
    CodeCommitResponse.untag_resource = untag_resource  # type: ignore[attr-defined]
    CodeCommitResponse.list_tags_for_resource = list_tags_for_resource  # type: ignore[attr-defined]


# --- SageMaker model registry -----------------------------------------------------


def _sagemaker_delete_model_registry() -> None:
    """DeleteModelPackage and DeleteModelPackageGroup, with AWS's refusal to delete a
    group that still holds versions."""

    def delete_model_package(backend: SageMakerModelBackend, name_or_arn: str) -> None:
        arn = backend.model_package_name_mapping.get(name_or_arn, name_or_arn)
        package = backend.model_packages.pop(arn, None)
        if package is None:
            raise ValidationError(f"Model package {name_or_arn} does not exist.")
        for key in [k for k, v in backend.model_package_name_mapping.items() if v == arn]:
            del backend.model_package_name_mapping[key]

    def delete_model_package_group(backend: SageMakerModelBackend, name: str) -> None:
        group = backend.describe_model_package_group(name)  # raises "does not exist"
        versions = [
            p for p in backend.model_packages.values() if p.model_package_group_name == name
        ]
        if versions:
            raise ConflictException(
                f"Model Package Group {group.arn} contains {len(versions)} model package(s); "
                "delete them before deleting the group."
            )
        del backend.model_package_groups[name]

    def delete_model_package_response(self: SageMakerResponse) -> ActionResult:
        delete_model_package(self.sagemaker_backend, self._get_param("ModelPackageName"))
        return EmptyResult()

    def delete_model_package_group_response(self: SageMakerResponse) -> ActionResult:
        delete_model_package_group(self.sagemaker_backend, self._get_param("ModelPackageGroupName"))
        return EmptyResult()

    SageMakerResponse.delete_model_package = delete_model_package_response  # type: ignore[attr-defined]
    SageMakerResponse.delete_model_package_group = delete_model_package_group_response  # type: ignore[attr-defined]


def _sagemaker_update_endpoint() -> None:
    """UpdateEndpoint: point an endpoint at another endpoint config (InService at once)."""

    def update_endpoint(self: SageMakerResponse) -> ActionResult:
        backend = self.sagemaker_backend
        name = self._get_param("EndpointName")
        config_name = self._get_param("EndpointConfigName")
        backend.describe_endpoint(name)  # raises "Could not find endpoint"
        config = backend.describe_endpoint_config(config_name)
        endpoint = backend.endpoints[name]
        endpoint.endpoint_config_name = config_name
        endpoint.production_variants = endpoint._process_production_variants(
            config["ProductionVariants"]
        )
        endpoint.data_capture_config = config["DataCaptureConfig"]
        endpoint.last_modified_time = utcnow()
        return ActionResult({"EndpointArn": endpoint.arn})

    SageMakerResponse.update_endpoint = update_endpoint  # type: ignore[attr-defined]


def _events_target_delivery() -> None:
    from pipelines.emulator.events_delivery import (
        patch_put_events_sources,
        patch_rule_delivery,
        patch_s3_eventbridge_configuration,
        patch_s3_object_created_event,
    )

    patch_rule_delivery()
    patch_put_events_sources()
    patch_s3_object_created_event()
    patch_s3_eventbridge_configuration()


PATCHES: tuple[Patch, ...] = (
    Patch(
        "events-target-delivery",
        "PutEvents failed (500) when a matching rule had a SageMaker/CodeBuild target; SNS "
        "targets were not delivered, DISABLED rules fired, SQS targets and S3's events differed "
        "from AWS's shapes, aws.* sources were accepted from anyone, and S3 hid its "
        "EventBridge notification setting (pipelines/emulator/events_delivery)",
        _events_target_delivery,
    ),
    Patch(
        "s3-bucket-policy-conditions",
        "conditions other than StringEquals were ignored and an unmet one denied, so the "
        "deny-non-TLS bucket policy blocked HTTPS requests too",
        _s3_bucket_policy_conditions,
    ),
    Patch(
        "codecommit-epoch-dates",
        "moto returns ISO strings; the provider fails with 'expected LastModifiedDate to be a "
        "JSON Number'",
        _codecommit_epoch_dates,
    ),
    Patch(
        "codecommit-tagging",
        "ListTagsForResource/TagResource are unimplemented (500); the provider calls them after "
        "every create and read",
        _codecommit_tagging,
    ),
    Patch(
        "sagemaker-delete-model-registry",
        "DeleteModelPackageGroup is unimplemented (500), so terraform destroy retried for minutes",
        _sagemaker_delete_model_registry,
    ),
    Patch(
        "sagemaker-update-endpoint",
        "UpdateEndpoint is unimplemented (500); a local redeploy records the new version with it",
        _sagemaker_update_endpoint,
    ),
)


def apply_patches() -> tuple[str, ...]:
    """Apply every patch once per process; return the names applied."""
    if getattr(SageMakerResponse, _APPLIED_MARKER, False):
        return tuple(p.name for p in PATCHES)
    for patch in PATCHES:
        patch.apply()
    setattr(SageMakerResponse, _APPLIED_MARKER, True)
    return tuple(p.name for p in PATCHES)
