"""The TransformStep (a batch transform job) in the local executor, with SageMaker's semantics.

The request is CreateTransformJob's. The model it names (``ModelName``, typically a ModelStep's
``properties.ModelName``) is described from the emulator and served for the job by the local
endpoint's own front and model server (``python -m pipelines.serving.model_host``: this
package sits below serving and reaches it as a process), started for the job and stopped
after it, whether it succeeds, fails or is stopped. Then, as SageMaker's batch transform does
(developer guide "batch-transform", "batch-transform-data-processing"; API reference
CreateTransformJob, TransformInput, DataProcessing):

- every object under ``TransformInput.DataSource.S3DataSource.S3Uri`` (an ``S3Prefix``, or a
  ``ManifestFile`` listing them) is read, gunzipped when ``CompressionType`` is ``Gzip``;
- ``SplitType`` ``None`` sends each object whole, ``Line`` splits it into records, one per
  line (``RecordIO`` and ``TFRecord`` are refused);
- ``BatchStrategy`` ``SingleRecord`` sends one record per request, ``MultiRecord`` as many
  lines as fit in ``MaxPayloadInMB`` (6 by default; a record larger than that fails the job);
- each request carries ``ContentType`` and ``Accept``; the container sees ``SAGEMAKER_BATCH``
  and the batch settings in its environment, with the model's and the job's ``Environment``;
- ``DataProcessing``: ``InputFilter`` selects what each record sends, ``JoinSource`` ``Input``
  joins each input record with its prediction (CSV: the prediction's fields appended to the
  row; JSON: an object gains ``SageMakerOutput``, anything else becomes
  ``{"SageMakerInput": ..., "SageMakerOutput": ...}``), ``OutputFilter`` selects what is
  kept; both filters take the JSONPath subset ``$``, ``$.a.b``, ``$[i]``, ``$[i:j]``,
  ``$[i,j:k,-1]`` (and ``$.a[...]``); data processing needs ``SplitType`` ``Line`` and
  CSV or JSON (Lines) content;
- the results of an object are assembled (``AssembleWith`` ``Line``: one record per line;
  ``None``: the responses' bytes back to back) into ``<S3OutputPath>/<object's path
  relative to the input prefix>.out``;
- a record the model does not answer with 200 fails the job, naming the object, the
  records and the model's answer.

Requests run one at a time (``MaxConcurrentTransforms`` is not parallelised locally).
"""

from __future__ import annotations

import csv
import gzip
import http.client
import io
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core import s3io
from pipelines.core.processes import LOOPBACK
from pipelines.executor.graph import StepNode
from pipelines.executor.runners import (
    JobContext,
    Runner,
    StepFailed,
    StepOutcome,
    StepStopped,
    _arn,
    _client_error,
    _iso,
    job_name,
)

_MODEL_HOST = "pipelines.serving.model_host"
DEFAULT_MAX_PAYLOAD_MB = 6
DEFAULT_INVOCATION_TIMEOUT = 600.0
DATA_PROCESSING_TYPES = ("text/csv", "application/json", "application/jsonlines")
_SELECTOR = re.compile(r"^-?\d*(:-?\d*)?$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


# --- the request ------------------------------------------------------------------------------


def request_problems(arguments: dict[str, Any]) -> list[tuple[str, str]]:
    """What the local executor cannot run in a CreateTransformJob request, as
    ``(field, sentence)``; values not known yet (other steps' properties) are skipped."""
    problems: list[tuple[str, str]] = []
    transform_input = _mapping(arguments.get("TransformInput"))
    split = transform_input.get("SplitType", "None")
    if split in ("RecordIO", "TFRecord"):
        problems.append(
            (
                "TransformInput.SplitType",
                f"{split} records are not split locally; use Line or None, or run the "
                "pipeline on SageMaker.",
            )
        )
    source = _mapping(_mapping(transform_input.get("DataSource")).get("S3DataSource"))
    kind = source.get("S3DataType", "S3Prefix")
    if kind not in ("S3Prefix", "ManifestFile") and isinstance(kind, str):
        problems.append(
            (
                "TransformInput.DataSource.S3DataSource.S3DataType",
                f"{kind} is not read locally; use S3Prefix or ManifestFile.",
            )
        )
    processing = _mapping(arguments.get("DataProcessing"))
    for name in ("InputFilter", "OutputFilter"):
        expression = processing.get(name)
        if isinstance(expression, str) and parse_path(expression) is None:
            problems.append(
                (
                    f"DataProcessing.{name}",
                    f"{expression!r} is outside the JSONPath subset the local executor "
                    "supports: $, $.a.b, $[i], $[i:j], $[i,j:k] and $.a[...].",
                )
            )
    uses_processing = (
        any(processing.get(name) not in (None, "$") for name in ("InputFilter", "OutputFilter"))
        or processing.get("JoinSource", "None") != "None"
    )
    if uses_processing and split != "Line" and isinstance(split, str):
        problems.append(
            (
                "DataProcessing",
                "filtering or joining records needs TransformInput.SplitType Line.",
            )
        )
    content_type = media(transform_input.get("ContentType"))
    if (
        uses_processing
        and isinstance(content_type, str)
        and content_type not in DATA_PROCESSING_TYPES
    ):
        problems.append(
            (
                "DataProcessing",
                f"filtering or joining records needs CSV or JSON input, not "
                f"{content_type or 'no ContentType'}.",
            )
        )
    return problems


def _mapping(value: Any) -> dict[str, Any]:
    """``value`` if it is an object; {} when absent or not known before the run."""
    return value if isinstance(value, dict) else {}


def media(value: Any) -> Any:
    return value.split(";", 1)[0].strip().lower() if isinstance(value, str) else value


# --- JSONPath, the subset batch transform's filters use -----------------------------------------


def parse_path(expression: str) -> list[tuple[str, Any]] | None:
    """``$``, ``$.a.b``, ``$[0,2:4,-1]``, ``$.a[1:]`` as steps (("key", name) or
    ("select", [index or slice, ...])); None for anything else."""
    if not expression.startswith("$"):
        return None
    rest, steps = expression[1:], []
    while rest:
        if rest.startswith("."):
            match = re.match(r"\.([A-Za-z_][A-Za-z0-9_-]*)", rest)
            if match is None:
                return None
            steps.append(("key", match.group(1)))
            rest = rest[match.end() :]
        elif rest.startswith("["):
            end = rest.find("]")
            if end < 0:
                return None
            selectors = []
            for part in rest[1:end].split(","):
                part = part.strip()
                quoted = re.fullmatch(r"'([^']*)'|\"([^\"]*)\"", part)
                if quoted:
                    selectors.append(quoted.group(1) or quoted.group(2) or "")
                elif part and _SELECTOR.match(part):
                    if ":" in part:
                        start, stop = part.split(":")
                        selectors.append(
                            slice(int(start) if start else None, int(stop) if stop else None)
                        )
                    else:
                        selectors.append(int(part))
                else:
                    return None
            steps.append(("select", selectors))
            rest = rest[end + 1 :]
        else:
            return None
    return steps


def apply_path(expression: str, value: Any) -> Any:
    steps = parse_path(expression)
    if steps is None:
        raise ValueError(f"unsupported JSONPath {expression!r}")
    for kind, argument in steps:
        if kind == "key":
            if not isinstance(value, dict) or argument not in value:
                raise ValueError(f"{expression!r} selects nothing: no key {argument!r}")
            value = value[argument]
            continue
        if isinstance(value, dict):
            value = {key: value[key] for key in argument if isinstance(key, str) and key in value}
            continue
        if not isinstance(value, list):
            raise ValueError(f"{expression!r} selects from a {type(value).__name__}")
        picked: list[Any] = []
        for selector in argument:
            if isinstance(selector, slice):
                picked += value[selector]
            elif isinstance(selector, int):
                if not -len(value) <= selector < len(value):
                    raise ValueError(f"{expression!r}: index {selector} is out of range")
                picked.append(value[selector])
            else:
                raise ValueError(f"{expression!r}: a key selects from an object, not a list")
        value = picked
    return value


# --- records ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransformSettings:
    split: str
    strategy: str
    max_payload: int
    content_type: str | None
    accept: str | None
    assemble: str
    input_filter: str
    output_filter: str
    join: bool

    @classmethod
    def from_request(cls, arguments: dict[str, Any]) -> TransformSettings:
        transform_input = arguments["TransformInput"]
        processing = arguments.get("DataProcessing") or {}
        megabytes = arguments.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)
        return cls(
            split=transform_input.get("SplitType", "None"),
            strategy=arguments.get("BatchStrategy", "MultiRecord"),
            # 0 lifts the limit (the API's streaming setting).
            max_payload=int(megabytes) * 1024 * 1024 if megabytes else sys.maxsize,
            content_type=transform_input.get("ContentType"),
            accept=(arguments.get("TransformOutput") or {}).get("Accept"),
            assemble=(arguments.get("TransformOutput") or {}).get("AssembleWith", "None"),
            input_filter=processing.get("InputFilter", "$"),
            output_filter=processing.get("OutputFilter", "$"),
            join=processing.get("JoinSource", "None") == "Input",
        )

    @property
    def csv(self) -> bool:
        return media(self.content_type) == "text/csv"

    @property
    def processing(self) -> bool:
        return self.join or self.input_filter != "$" or self.output_filter != "$"


def split_records(body: bytes, split: str) -> list[bytes]:
    """The object's records: itself whole, or its lines without their line ends (a final
    newline ends the last line; it starts no empty record)."""
    if split != "Line":
        return [body]
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    return [line[:-1] if line.endswith(b"\r") else line for line in lines]


def batches(records: list[bytes], settings: TransformSettings) -> Iterator[tuple[int, list[bytes]]]:
    """(index of the first record, records) per request."""
    if settings.split != "Line" or settings.strategy == "SingleRecord":
        for index, record in enumerate(records):
            _fits(record, settings, index)
            yield index, [record]
        return
    start, batch, size = 0, [], 0
    for index, record in enumerate(records):
        _fits(record, settings, index)
        if batch and size + len(record) + 1 > settings.max_payload:
            yield start, batch
            start, batch, size = index, [], 0
        batch.append(record)
        size += len(record) + 1
    if batch:
        yield start, batch


def _fits(record: bytes, settings: TransformSettings, index: int) -> None:
    if len(record) + 1 > settings.max_payload:
        raise StepFailed(
            f"ClientError: record {index + 1} is {len(record):,} bytes, above MaxPayloadInMB "
            f"({settings.max_payload // (1024 * 1024)} MB): raise MaxPayloadInMB or split the "
            "input into smaller records."
        )


def _parse(record: bytes, settings: TransformSettings) -> Any:
    text = record.decode("utf-8")
    if settings.csv:
        return next(csv.reader([text]), [])
    return json.loads(text)


def _render(value: Any, settings: TransformSettings) -> bytes:
    if settings.csv:
        if not isinstance(value, list):
            value = [value]
        stream = io.StringIO()
        csv.writer(stream, lineterminator="").writerow(value)
        return stream.getvalue().encode("utf-8")
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def request_body(batch: list[bytes], settings: TransformSettings) -> bytes:
    """What the model receives: the records (filtered), a line each, or the object whole."""
    if settings.input_filter != "$":
        batch = [
            _render(apply_path(settings.input_filter, _parse(r, settings)), settings) for r in batch
        ]
    if settings.split != "Line":
        return batch[0]
    return b"".join(record + b"\n" for record in batch)


def output_records(
    inputs: list[bytes], response: bytes, settings: TransformSettings
) -> list[bytes]:
    """The result records of one request, joined and filtered; one per input record when
    records are joined or filtered, the response's lines (or the response) otherwise."""
    lines = split_records(response, "Line")
    if not settings.processing:
        return lines if settings.split == "Line" else [response]
    if len(inputs) == 1 and len(lines) != 1:
        lines = [response.strip()]
    if len(lines) != len(inputs):
        raise StepFailed(
            f"ClientError: the model answered {len(lines)} records for {len(inputs)} input "
            "records, so its results cannot be joined with them (DataProcessing); answer one "
            "line per record, or use BatchStrategy SingleRecord."
        )
    results = []
    for record, line in zip(inputs, lines, strict=True):
        if settings.join:
            original = _parse(record, settings)
            if settings.csv:
                prediction = next(csv.reader([line.decode("utf-8")]), [])
                joined: Any = (original if isinstance(original, list) else [original]) + prediction
            else:
                try:
                    prediction = json.loads(line)
                except ValueError:
                    prediction = line.decode("utf-8")
                if isinstance(original, dict):
                    joined = {**original, "SageMakerOutput": prediction}
                else:
                    joined = {"SageMakerInput": original, "SageMakerOutput": prediction}
        else:
            joined = (
                next(csv.reader([line.decode("utf-8")]), []) if settings.csv else json.loads(line)
            )
        if settings.output_filter != "$":
            joined = apply_path(settings.output_filter, joined)
        results.append(_render(joined, settings))
    return results


def assemble(results: list[list[bytes]], settings: TransformSettings) -> bytes:
    if settings.assemble == "Line":
        return b"".join(record + b"\n" for records in results for record in records)
    return b"".join(record for records in results for record in records)


# --- the job ----------------------------------------------------------------------------------


def input_objects(ctx: JobContext, source: dict[str, Any]) -> list[tuple[str, str]]:
    """(S3 URI, path relative to the input) of every object the job reads."""
    s3 = ctx.connection.client("s3")
    uri = source["S3Uri"]
    try:
        if source.get("S3DataType", "S3Prefix") == "ManifestFile":
            bucket, key = s3io.parse_s3_uri(uri)
            manifest = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
            prefix = manifest[0]["prefix"]
            return [(f"{prefix.rstrip('/')}/{name}", name) for name in manifest[1:]]
        bucket, _ = s3io.parse_s3_uri(uri)
        return [(f"s3://{bucket}/{o.key}", o.relative) for o in s3io.list_objects(s3, uri)]
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"listing the transform input {uri}", error) from error
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise StepFailed(
            f"ClientError: the manifest {uri} is not a JSON list starting with "
            f'{{"prefix": "s3://..."}}: {error}'
        ) from error


def model_container(ctx: JobContext, model_name: str) -> dict[str, Any]:
    """DescribeModel's container (a model made from a model package: the package's)."""
    sagemaker = ctx.connection.client("sagemaker")
    try:
        described = sagemaker.describe_model(ModelName=model_name)
        containers = described.get("Containers") or [described.get("PrimaryContainer") or {}]
        if len(containers) != 1:
            raise StepFailed(
                f"ClientError: model {model_name} is an inference pipeline of "
                f"{len(containers)} containers; the local executor serves one."
            )
        container = dict(containers[0])
        if container.get("ModelPackageName") and not container.get("Image"):
            package = sagemaker.describe_model_package(
                ModelPackageName=container["ModelPackageName"]
            )
            container = {
                **package["InferenceSpecification"]["Containers"][0],
                **{k: v for k, v in container.items() if k == "Environment"},
            }
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"DescribeModel {model_name}", error) from error
    container["ModelName"] = model_name
    return container


class ModelHost:
    """The model's servers for the job's duration (pipelines.serving.model_host)."""

    def __init__(self, ctx: JobContext, container: dict[str, Any], timeout: float) -> None:
        self.ctx = ctx
        folder = ctx.step_dir / "serving"
        folder.mkdir(parents=True, exist_ok=True)
        self.ready = folder / "ready.json"
        spec = {
            "state_dir": str(folder),
            "name": "transform",
            "container": container,
            "emulator": {
                "endpoint": ctx.connection.endpoint_url,
                "ca_bundle": str(ctx.connection.ca_bundle),
                "region": ctx.connection.region,
            },
            "runtime_cache": str(ctx.runtime_cache) if ctx.runtime_cache else None,
            # --host-runtime: the run's jobs use the host interpreter, and so does the model.
            "host_runtime": ctx.runtime_cache is None
            or any(runtime.host for runtime in ctx.runtimes.values()),
            "timeout": timeout,
            "ready": str(self.ready),
        }
        (folder / "spec.json").write_text(json.dumps(spec))
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        with ctx.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", _MODEL_HOST, "--spec", str(folder / "spec.json")],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=folder,
            )

    def wait(self, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.ready.exists():
                record = json.loads(self.ready.read_text())
                if "error" in record:
                    raise StepFailed(
                        f"ClientError: the model could not be served: {record['error']}"
                    )
                return int(record["port"])
            if self.process.poll() is not None:
                raise StepFailed(
                    f"ClientError: the model's server exited (code {self.process.returncode}) "
                    f"before it served; see {self.ctx.log_path}."
                )
            if self.ctx.stop.wait(0.1):
                raise StepStopped()
        raise StepFailed(f"ClientError: the model was not served within {timeout:.0f} s.")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def invoke(
    port: int, body: bytes, settings: TransformSettings, timeout: float
) -> tuple[int, bytes]:
    headers = {"Content-Type": settings.content_type or "application/octet-stream"}
    if settings.accept:
        headers["Accept"] = settings.accept
    for attempt in range(3):
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=timeout)
        try:
            connection.request("POST", "/invocations", body=body, headers=headers)
            response = connection.getresponse()
            answer = response.status, response.read()
        except (OSError, http.client.HTTPException):
            if attempt == 2:
                raise
            time.sleep(1.0)
            continue
        finally:
            connection.close()
        # 503: the front answers while it replaces a model server that died.
        if answer[0] != 503 or attempt == 2:
            return answer
        time.sleep(1.0)
    raise AssertionError("unreachable")


def run_transform(node: StepNode, args: dict[str, Any], ctx: JobContext) -> StepOutcome:
    name = job_name(ctx.execution, node.name)
    started = time.time()
    problems = request_problems(args)
    if problems:
        field, sentence = problems[0]
        raise StepFailed(f"ClientError: {field}: {sentence}")
    settings = TransformSettings.from_request(args)
    source = args["TransformInput"]["DataSource"]["S3DataSource"]
    gzipped = args["TransformInput"].get("CompressionType", "None") == "Gzip"
    output_path = args["TransformOutput"]["S3OutputPath"].rstrip("/")
    objects = input_objects(ctx, source)
    if not objects:
        raise StepFailed(f"ClientError: No S3 objects found under {source['S3Uri']}.")
    container = model_container(ctx, args["ModelName"])
    # What SageMaker's batch transform sets in the container, over the model's and the job's.
    container["Environment"] = {
        **(container.get("Environment") or {}),
        **(args.get("Environment") or {}),
        "SAGEMAKER_BATCH": "true",
        "SAGEMAKER_MAX_PAYLOAD_IN_MB": str(args.get("MaxPayloadInMB", DEFAULT_MAX_PAYLOAD_MB)),
        "SAGEMAKER_BATCH_STRATEGY": settings.strategy.upper().replace("RECORD", "_RECORD"),
        "SAGEMAKER_MAX_CONCURRENT_TRANSFORMS": "1",
    }
    client_config = args.get("ModelClientConfig") or {}
    timeout = float(client_config.get("InvocationsTimeoutInSeconds", DEFAULT_INVOCATION_TIMEOUT))
    s3 = ctx.connection.client("s3")
    host = ModelHost(ctx, container, timeout=300.0)
    try:
        port = host.wait(300.0)
        with ctx.log_path.open("a") as log:
            for uri, relative in objects:
                body = _read(s3, uri)
                if gzipped:
                    body = gzip.decompress(body)
                results = _transform_object(port, body, uri, settings, timeout, ctx)
                target = f"{output_path}/{relative}.out"
                bucket, key = s3io.parse_s3_uri(target)
                try:
                    s3.put_object(Bucket=bucket, Key=key, Body=assemble(results, settings))
                except (ClientError, BotoCoreError) as error:
                    raise _client_error(f"uploading {target}", error) from error
                log.write(f"[transform] {uri} -> {target} ({sum(map(len, results))} records)\n")
    finally:
        host.close()
    ended = time.time()
    properties = {
        **args,
        "TransformJobName": name,
        "TransformJobArn": _arn(ctx, f"transform-job/{name}"),
        "TransformJobStatus": "Completed",
        "CreationTime": _iso(started),
        "TransformStartTime": _iso(started),
        "TransformEndTime": _iso(ended),
        "LastModifiedTime": _iso(ended),
    }
    return StepOutcome(properties=properties)


def _read(s3: Any, uri: str) -> bytes:
    bucket, key = s3io.parse_s3_uri(uri)
    try:
        return s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    except (ClientError, BotoCoreError) as error:
        raise _client_error(f"reading the transform input {uri}", error) from error


def _transform_object(
    port: int, body: bytes, uri: str, settings: TransformSettings, timeout: float, ctx: JobContext
) -> list[list[bytes]]:
    records = split_records(body, settings.split)
    results = []
    for first, batch in batches(records, settings):
        if ctx.stop.is_set():
            raise StepStopped()
        where = f"{uri}, records {first + 1}-{first + len(batch)}"
        try:
            payload = request_body(batch, settings)
        except (ValueError, UnicodeDecodeError) as error:
            raise StepFailed(f"ClientError: InputFilter on {where}: {error}") from error
        try:
            status, answer = invoke(port, payload, settings, timeout)
        except (OSError, http.client.HTTPException) as error:
            raise StepFailed(
                f"AlgorithmError: the model did not answer for {where}: {error}"
            ) from error
        if status != 200:
            text = answer[:300].decode("utf-8", "replace").strip()
            raise StepFailed(
                f"AlgorithmError: Bad HTTP status received from algorithm: {status} for "
                f"{where}: {text} (log: {ctx.log_path})"
            )
        try:
            results.append(output_records(batch, answer, settings))
        except (ValueError, UnicodeDecodeError) as error:
            raise StepFailed(f"ClientError: joining or filtering {where}: {error}") from error
    return results


TRANSFORM_RUNNERS: dict[str, Runner] = {"Transform": run_transform}
