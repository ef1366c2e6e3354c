"""Send the rows of a CSV file to the deployed endpoint and collect the predictions.

The feature columns come from the deployed version's data baseline, so a file may
carry extra columns (the target, an id): they are left out of the request, and an
included target lets the summary report the error. Rows go as ``text/csv`` without
a header, the SageMaker convention, in batches.
"""

from __future__ import annotations

import http.client
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.aws import AwsConnection
from pipelines.core.documents import prediction_value
from pipelines.core.errors import MlopsError

if TYPE_CHECKING:
    import pandas as pd

BATCH_ROWS = 500
INFERENCE_ID_HEADER = "X-Amzn-SageMaker-Inference-Id"
# (body, inference id or None) -> response body
Invoke = Callable[..., bytes]


@dataclass(frozen=True)
class Predictions:
    values: list[float]
    actual: list[float] | None
    target: str
    features: list[str]

    @property
    def rmse(self) -> float | None:
        if not self.actual:
            return None
        return math.sqrt(
            sum((p - a) ** 2 for p, a in zip(self.values, self.actual, strict=True))
            / len(self.actual)
        )

    @property
    def r2(self) -> float | None:
        if not self.actual or len(self.actual) < 2:
            return None
        mean = sum(self.actual) / len(self.actual)
        total = sum((a - mean) ** 2 for a in self.actual)
        residual = sum((p - a) ** 2 for p, a in zip(self.values, self.actual, strict=True))
        return 1 - residual / total if total else None


def read_rows(
    path: Path, features: list[str], target: str
) -> tuple[pd.DataFrame, list[float] | None]:
    """The feature columns of a CSV with a header (in model order), and the target if present."""
    import pandas as pd  # only when rows are read

    if not path.is_file():
        raise MlopsError(f"Data file {path} does not exist.")
    try:
        frame = pd.read_csv(path)
    except (ValueError, pd.errors.ParserError) as error:
        raise MlopsError(f"{path} is not a readable CSV with a header: {error}") from error
    if frame.empty:
        raise MlopsError(f"{path} has no data rows.")
    missing = [name for name in features if name not in frame.columns]
    if missing:
        raise MlopsError(
            f"{path} lacks the model's feature column(s) {', '.join(missing)}; "
            f"the model expects {', '.join(features)}."
        )
    actual = frame[target].astype(float).tolist() if target in frame.columns else None
    return frame[features], actual


def predict(
    rows: pd.DataFrame,
    invoke: Invoke,
    batch_rows: int = BATCH_ROWS,
    inference_ids: list[str] | None = None,
) -> list[float]:
    """Predictions for the rows, in batches; with ``inference_ids``, one request per row
    carrying its id (SageMaker's InferenceId), so ground truth can be joined to it later."""
    values: list[float] = []
    if inference_ids is not None:
        for index, inference_id in enumerate(inference_ids):
            body = rows.iloc[index : index + 1].to_csv(header=False, index=False).encode()
            answer = json.loads(invoke(body, inference_id))
            values += [prediction_value(v) for v in answer["predictions"]]
        return values
    for start in range(0, len(rows), batch_rows):
        body = rows.iloc[start : start + batch_rows].to_csv(header=False, index=False).encode()
        answer = json.loads(invoke(body))
        values += [prediction_value(v) for v in answer["predictions"]]
    return values


def inference_ids(path: Path, column: str) -> list[str]:
    """The ids of a file's rows, from its ``column`` (each 1-64 characters, unique)."""
    import pandas as pd

    frame = pd.read_csv(path, dtype=str, keep_default_na=False, usecols=lambda c: c == column)
    if column not in frame.columns:
        raise MlopsError(f"{path} has no column {column!r} for the inference ids.")
    ids = frame[column].tolist()
    bad = [i for i in ids if not 1 <= len(i) <= 64]
    if bad:
        raise MlopsError(f"Inference ids must be 1-64 characters; {column!r} holds {bad[0]!r}.")
    if len(set(ids)) != len(ids):
        raise MlopsError(f"The inference ids in {column!r} must be unique.")
    return ids


def local_invoker(url: str, log: Path | None = None) -> Invoke:
    """Posts to the local endpoint; ``log`` is the serving model server's log, named when
    the model fails on a request (its traceback is there, as CloudWatch holds it on AWS)."""
    host, port = url.removeprefix("http://").split(":")

    def invoke(body: bytes, inference_id: str | None = None) -> bytes:
        connection = http.client.HTTPConnection(host, int(port), timeout=120)
        headers = {"Content-Type": "text/csv", "Accept": "application/json"}
        if inference_id:
            headers[INFERENCE_ID_HEADER] = inference_id
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError as error:
            raise MlopsError(
                f"The local endpoint at {url} is not answering ({error}); "
                "deploy a version with `invoke deploy`."
            ) from error
        finally:
            connection.close()
        if response.status == 500:
            where = f"; its traceback is in {log}" if log else ""
            raise MlopsError(
                "The model failed on the request (500 from its handlers, which SageMaker "
                f"reports to clients as ModelError){where}."
            )
        if response.status != 200:
            raise MlopsError(
                f"The endpoint refused the request ({response.status}): {_message(payload)}"
            )
        return payload

    return invoke


def sagemaker_invoker(connection: AwsConnection, endpoint: str) -> Invoke:
    runtime = connection.client("sagemaker-runtime", max_attempts=5, retries_mode="adaptive")

    def invoke(body: bytes, inference_id: str | None = None) -> bytes:
        request = {"InferenceId": inference_id} if inference_id else {}
        try:
            response = runtime.invoke_endpoint(
                EndpointName=endpoint,
                ContentType="text/csv",
                Accept="application/json",
                Body=body,
                **request,
            )
        except ClientError as error:
            detail = error.response.get("Error", {})
            if detail.get("Code") == "ModelError":
                raise MlopsError(
                    f"The model behind {endpoint} failed on the request (ModelError: "
                    f"{detail.get('Message')}); its traceback is in the CloudWatch log group "
                    f"/aws/sagemaker/Endpoints/{endpoint}."
                ) from error
            raise MlopsError(
                f"The endpoint {endpoint} refused the request: {detail.get('Message')}"
            ) from error
        except BotoCoreError as error:
            raise MlopsError(f"Could not reach the endpoint {endpoint}: {error}") from error
        return response["Body"].read()

    return invoke


def _message(payload: bytes) -> str:
    try:
        return str(json.loads(payload).get("error", payload.decode()))
    except (ValueError, AttributeError):
        return payload.decode(errors="replace")
