"""Steps the local executor cannot run are refused before anything runs, one sentence each
saying why and what to do; the steps are built with the SDK, as a team's pipeline builds them."""

from __future__ import annotations

import json

import pytest
from sagemaker.lambda_helper import Lambda
from sagemaker.workflow.callback_step import CallbackOutput, CallbackStep
from sagemaker.workflow.emr_step import EMRStep, EMRStepConfig
from sagemaker.workflow.lambda_step import LambdaStep
from sagemaker.workflow.pipeline import Pipeline

from pipelines.definition.sdk_session import definition_session
from pipelines.executor.expressions import EvaluationContext
from pipelines.executor.preflight import check_definition

ACCOUNT = "123456789012"


def refusals(*steps) -> dict[str, str]:
    session = definition_session("us-east-1", "refusals")
    pipeline = Pipeline(name="refusals", steps=list(steps), sagemaker_session=session)
    definition = json.loads(pipeline.definition())
    problems = check_definition(definition, EvaluationContext(parameters={}, execution={}))
    return {problem.step: problem.message for problem in problems if problem.field == "Type"}


@pytest.mark.parametrize(
    ("step", "why"),
    [
        (
            lambda: LambdaStep(
                name="Notify",
                lambda_func=Lambda(
                    function_arn=f"arn:aws:lambda:us-east-1:{ACCOUNT}:function:notify"
                ),
            ),
            "a LambdaStep invokes an AWS Lambda function, and no Lambda function runs locally",
        ),
        (
            lambda: EMRStep(
                name="Spark",
                display_name="Spark",
                description="spark",
                cluster_id="j-1ABCDEFGHIJKL",
                step_config=EMRStepConfig(jar="s3://refusals/job.jar"),
            ),
            "an EMRStep submits a step to an Amazon EMR cluster, and there is no EMR cluster",
        ),
        (
            lambda: CallbackStep(
                name="Approve",
                sqs_queue_url=f"https://sqs.us-east-1.amazonaws.com/{ACCOUNT}/approvals",
                inputs={},
                outputs=[CallbackOutput(output_name="decision")],
            ),
            "a CallbackStep waits for an outside system to answer through an SQS queue",
        ),
    ],
)
def test_steps_that_cannot_run_locally_are_refused_with_why_and_what_to_do(step, why):
    built = step()
    found = refusals(built)
    message = found[built.name]
    assert message.startswith(
        f"Unsupported step type {json.dumps(built.step_type.value)[1:-1]!r}: {why}"
    )
    assert ": run this pipeline on SageMaker, or " in message  # ...and what to do instead
    assert message.count(".") == 1  # one sentence
