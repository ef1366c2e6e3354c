"""The applied stack outlives its emulator (issue 12, item 1): after kill -9 and a
restart, infra-up finds nothing to change; a half-done destroy can be finished."""

from __future__ import annotations

import psutil
import pytest

from pipelines import targets
from pipelines.config.deployment import Deployment
from pipelines.config.infra_config import InfraConfig
from pipelines.stack import stacks as infra
from pipelines.stack.terraform import TerraformError

pytestmark = pytest.mark.e2e


def test_the_stack_survives_kill_9_and_destroy_leaves_nothing(tmp_settings):
    deployment = Deployment.parse("local")
    stack = targets.open_stack(tmp_settings, deployment, start_emulator=True)
    try:
        first = infra.infra_up(stack)
        assert first.changed is True
        config = InfraConfig.from_outputs(first.outputs)
        s3 = stack.connection.client("s3")
        version = s3.put_object(Bucket=config.bucket_name, Key="kept.txt", Body=b"kept")

        info = stack.emulator.require_running()
        psutil.Process(info.pid).kill()
        psutil.Process(info.pid).wait(timeout=10)

        again = targets.open_stack(tmp_settings, deployment, start_emulator=True)
        assert again.emulator.require_running().restored is True
        second = infra.infra_up(again)
        assert second.changed is False
        assert second.outputs == first.outputs
        body = again.connection.client("s3").get_object(
            Bucket=config.bucket_name, Key="kept.txt", VersionId=version["VersionId"]
        )
        assert body["Body"].read() == b"kept"

        # A plain terraform destroy fails on the non-empty bucket half-way, after the
        # outputs are gone; rerunning destroy must still empty and remove the bucket.
        with pytest.raises(TerraformError):
            again.terraform.destroy()
        result = targets.destroy_stack(again)
        assert result.objects_deleted == 1
        assert result.emulator_stopped is True
        assert not again.emulator.has_data()

        fresh = targets.open_stack(tmp_settings, deployment, start_emulator=True)
        assert fresh.emulator.require_running().restored is False
        assert fresh.connection.client("s3").list_buckets()["Buckets"] == []
    finally:
        stack.emulator.stop()
