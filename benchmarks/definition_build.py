"""Time building the pipeline definition offline (goal, issue #3: under 3 s).

    python benchmarks/definition_build.py [--repeat N]

Each run is a fresh interpreter, so the figures include importing the SageMaker SDK.
The build uses placeholder credentials and a session that fails on any AWS request.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

from rich.console import Console
from rich.table import Table

_ONE_RUN = r"""
import json, time
t0 = time.perf_counter()
import boto3
from pipelines.definition.builder import definition_json, get_pipeline
from pipelines.config.infra_config import InfraConfig
from pipelines.definition.sdk_session import DefinitionSession
t1 = time.perf_counter()
config = InfraConfig(
    region="us-east-1", account_id="123456789012", environment="local", name_prefix="mlops",
    bucket_name="bench-bucket", bucket_arn="arn:aws:s3:::bench-bucket",
    execution_role_arn="arn:aws:iam::123456789012:role/bench",
    model_package_group_name="bench-models",
    model_package_group_arn="arn:aws:sagemaker:us-east-1:123456789012:model-package-group/bench-models",
    pipeline_name="bench-pipeline",
)
boto_session = boto3.Session(
    aws_access_key_id="x", aws_secret_access_key="y", region_name="us-east-1"
)
def refuse(request, **_):
    raise RuntimeError("AWS call during build: " + request.url)
boto_session.events.register("before-send", refuse)
session = DefinitionSession(boto_session, default_bucket=config.bucket_name)
first = definition_json(get_pipeline(config, session))
t2 = time.perf_counter()
second = definition_json(get_pipeline(config, session))
t3 = time.perf_counter()
assert first == second
print(json.dumps({"import": t1 - t0, "first build": t2 - t1, "second build": t3 - t2,
                  "import + first build": t2 - t0, "bytes": len(first)}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    runs = []
    for _ in range(args.repeat):
        result = subprocess.run(
            [sys.executable, "-c", _ONE_RUN], capture_output=True, text=True, check=True
        )
        runs.append(json.loads(result.stdout.strip().splitlines()[-1]))
    table = Table(title=f"Definition build, fresh interpreter (median of {args.repeat})")
    table.add_column("phase")
    table.add_column("seconds", justify="right")
    for name in ("import", "first build", "second build", "import + first build"):
        table.add_row(name, f"{statistics.median(r[name] for r in runs):.2f}")
    table.add_row("definition size (bytes)", str(runs[0]["bytes"]))
    Console().print(table)


if __name__ == "__main__":
    main()
