"""The AWS target's deployer: each stage is a SageMaker endpoint in its own environment."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.config.promotion_settings import PromotionSettings
from pipelines.core.aws import api_error, error_code, error_message
from pipelines.registry import ModelVersion, Registry
from pipelines.serving import predict as predicting
from pipelines.serving.deploy import (
    DeploySettings,
    deploy_to_sagemaker,
    deployed_package_arn,
    endpoint_name,
    remove_endpoints,
)
from pipelines.serving.deployer import StageDeployer, StageStatus


class SageMakerDeployer(StageDeployer):
    needs_confirmation = True

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        # A stage deploys the versions of the environment that trains (cross-account,
        # shared by that environment's group policy), when invoke.yaml names its group.
        source = PromotionSettings.from_settings(self.settings).source_model_package_group
        if self.stage and source:
            self.registry = Registry(self.connection, source, lock_dir=self.settings.state_dir)

    def _endpoint_name(self) -> str:
        # The stage is the Terraform environment, which the name already carries.
        return endpoint_name(self.config)

    def _rollout(self, version: ModelVersion, settings: DeploySettings) -> str:
        result = deploy_to_sagemaker(
            self.connection,
            self.config,
            version,
            settings,
            wait=self.wait,
            guard=self.still_approved(version),
        )
        verb = "Created" if result.created else f"Updated ({settings.strategy})"
        return (
            f"{verb} endpoint {result.endpoint} with version {version.version} "
            f"(config {result.endpoint_config}): {result.status}"
        )

    def status(self) -> StageStatus:
        sagemaker = self.connection.client("sagemaker")
        try:
            described = sagemaker.describe_endpoint(EndpointName=self.endpoint)
        except ClientError as error:
            return StageStatus(False, self.endpoint, f"{error_code(error)}: {error_message(error)}")
        except BotoCoreError as error:
            raise api_error(f"Describing {self.endpoint}", error) from error
        arn = deployed_package_arn(self.connection, self.config)
        state = described["EndpointStatus"]
        return StageStatus(
            state == "InService",
            self.endpoint,
            state,
            version=self.registry.describe(arn).version,
            package_arn=arn,
        )

    def down(self) -> str:
        removed = remove_endpoints(self.connection, self.config)
        return (
            f"Deleted {removed.endpoints} endpoint(s), {removed.endpoint_configs} endpoint "
            f"config(s) and {removed.models} model(s)."
        )

    def invoker(self) -> predicting.Invoke:
        return predicting.sagemaker_invoker(self.connection, self.endpoint)
