"""The container contract a job sees, as the SageMaker containers write it.

Training: the files SageMaker writes to ``/opt/ml/input/config/`` and the ``SM_*``
variables of the sagemaker-training-toolkit (``environment.Environment.to_env_vars``
and ``mapping.to_env_vars``: strings as they are, anything else as compact JSON with
sorted keys, so a boolean hyperparameter is ``true``). Processing: the
``/opt/ml/config/processingjobconfig.json`` and ``resourceconfig.json`` files.

Locally the container paths point into the job's sandbox; every path in these
values, hyperparameters included, is remapped the same way.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipelines.executor.jobs import Sandbox

CURRENT_HOST = "algo-1"
INSTANCE_GROUP = "homogeneousCluster"
NETWORK_INTERFACE = "eth0"
# sagemaker-scikit-learn-container's training entry point.
FRAMEWORK_MODULE = "sagemaker_sklearn_container.training:main"
# The sagemaker_* hyperparameters the toolkit knows (params.SAGEMAKER_HYPERPARAMETERS);
# any other sagemaker_* one is a framework parameter.
_TOOLKIT_HYPERPARAMETERS = frozenset(
    {
        "sagemaker_program",
        "sagemaker_submit_directory",
        "sagemaker_region",
        "sagemaker_job_name",
        "sagemaker_container_log_level",
        "sagemaker_enable_cloudwatch_metrics",
        "sagemaker_mpi_enabled",
        "sagemaker_parameter_server_enabled",
        "sagemaker_distributed_dataparallel_enabled",
        "sagemaker_instance_type",
    }
)
# Host variables a job may see: the locale and time zone, nothing of the user's shell.
ALLOWED_HOST_VARIABLES = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "TZ")
# The container's PATH, after the job environment's own bin folder.
CONTAINER_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def allowed_host_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """The only host variables that reach a job."""
    return {k: environ[k] for k in ALLOWED_HOST_VARIABLES if k in environ}


def env_value(value: Any) -> str:
    """mapping.to_env_vars' encoding of one value."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def decode_hyperparameter(value: str) -> Any:
    """The toolkit JSON-decodes each hyperparameters.json value, keeping text that is not JSON."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return value


def resource_config(instance_type: str) -> dict[str, Any]:
    """resourceconfig.json of a one-instance job."""
    return {
        "current_host": CURRENT_HOST,
        "current_instance_type": instance_type,
        "current_group_name": INSTANCE_GROUP,
        "hosts": [CURRENT_HOST],
        "instance_groups": [
            {
                "instance_group_name": INSTANCE_GROUP,
                "instance_type": instance_type,
                "hosts": [CURRENT_HOST],
            }
        ],
        "network_interface_name": NETWORK_INTERFACE,
    }


def _remap_value(value: Any, sandbox: Sandbox) -> Any:
    if isinstance(value, str):
        return sandbox.remap(value)
    if isinstance(value, list):
        return [_remap_value(item, sandbox) for item in value]
    if isinstance(value, dict):
        return {key: _remap_value(item, sandbox) for key, item in value.items()}
    return value


@dataclass(frozen=True)
class TrainingContract:
    env: dict[str, str]
    user_args: list[str]
    hyperparameters: dict[str, Any]  # user hyperparameters, decoded and remapped


def write_json(path: Path, document: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def input_data_config(request: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """inputdataconfig.json of a CreateTrainingJob request: each channel's content type
    (only when the request names one), input mode, distribution and record wrapper."""
    return {
        channel["ChannelName"]: {
            **({"ContentType": channel["ContentType"]} if "ContentType" in channel else {}),
            "TrainingInputMode": channel.get(
                "InputMode", request.get("AlgorithmSpecification", {}).get("TrainingInputMode")
            )
            or "File",
            "S3DistributionType": channel.get("DataSource", {})
            .get("S3DataSource", {})
            .get("S3DataDistributionType", "FullyReplicated"),
            "RecordWrapperType": channel.get("RecordWrapperType", "None"),
        }
        for channel in request.get("InputDataConfig", [])
    }


def training_contract(
    request: Mapping[str, Any],
    sandbox: Sandbox,
    *,
    job_name: str,
    program: str | None,
    submit_dir: str | None,
    cmd_args: Any,
    framework_module: str = FRAMEWORK_MODULE,
) -> TrainingContract:
    """Write /opt/ml/input/config/*.json and return the toolkit's SM_* environment.

    ``cmd_args`` renders hyperparameters as the toolkit's command line
    (runners.script_mode_arguments). ``program`` is None for a built-in algorithm (no
    entry point); ``framework_module`` is the image's SAGEMAKER_TRAINING_MODULE.
    """
    raw = {k: str(v) for k, v in (request.get("HyperParameters") or {}).items()}
    channels = [c["ChannelName"] for c in request.get("InputDataConfig", [])]
    instance_type = str(request.get("ResourceConfig", {}).get("InstanceType", "local"))
    config_dir = "/opt/ml/input/config"
    resources = resource_config(instance_type)
    input_data = input_data_config(request)
    write_json(sandbox.path(f"{config_dir}/hyperparameters.json"), raw)
    write_json(sandbox.path(f"{config_dir}/inputdataconfig.json"), input_data)
    write_json(sandbox.path(f"{config_dir}/resourceconfig.json"), resources)

    decoded = {k: decode_hyperparameter(v) for k, v in raw.items()}
    user_hps = {
        k: _remap_value(v, sandbox) for k, v in decoded.items() if not k.startswith("sagemaker_")
    }
    framework_params = {
        k: v
        for k, v in decoded.items()
        if k.startswith("sagemaker_") and k not in _TOOLKIT_HYPERPARAMETERS
    }
    user_args = list(cmd_args(user_hps))
    log_level = decoded.get("sagemaker_container_log_level", 20)
    channel_dirs = {name: sandbox.remap(f"/opt/ml/input/data/{name}") for name in channels}
    environment: dict[str, Any] = {
        "hosts": [CURRENT_HOST],
        "network_interface_name": NETWORK_INTERFACE,
        "hps": user_hps,
        "user_entry_point": program,
        "framework_params": framework_params,
        "resource_config": resources,
        "input_data_config": input_data,
        "output_data_dir": sandbox.remap("/opt/ml/output/data"),
        "channels": sorted(channels),
        "current_host": CURRENT_HOST,
        "current_instance_type": instance_type,
        "current_instance_group": INSTANCE_GROUP,
        "current_instance_group_hosts": [CURRENT_HOST],
        "instance_groups": [INSTANCE_GROUP],
        "instance_groups_dict": {
            INSTANCE_GROUP: {
                "instance_group_name": INSTANCE_GROUP,
                "instance_type": instance_type,
                "hosts": [CURRENT_HOST],
            }
        },
        "distribution_instance_groups": [],
        "is_hetero": False,
        "module_name": re.sub(r"\.py$", "", program) if program else None,
        "log_level": log_level,
        "framework_module": framework_module,
        "input_dir": sandbox.remap("/opt/ml/input"),
        "input_config_dir": sandbox.remap(config_dir),
        "output_dir": sandbox.remap("/opt/ml/output"),
        "num_cpus": os.cpu_count() or 1,
        "num_gpus": 0,
        "model_dir": sandbox.remap("/opt/ml/model"),
        "module_dir": submit_dir,
        "user_args": user_args,
        "output_intermediate_dir": sandbox.remap("/opt/ml/output/intermediate"),
    }
    training_env = {
        "additional_framework_parameters": framework_params,
        "channel_input_dirs": channel_dirs,
        "current_host": CURRENT_HOST,
        "current_instance_group": INSTANCE_GROUP,
        "current_instance_group_hosts": [CURRENT_HOST],
        "current_instance_type": instance_type,
        "distribution_hosts": [],
        "distribution_instance_groups": [],
        "framework_module": framework_module,
        "hosts": [CURRENT_HOST],
        "hyperparameters": user_hps,
        "input_config_dir": environment["input_config_dir"],
        "input_data_config": input_data,
        "input_dir": environment["input_dir"],
        "instance_groups": [INSTANCE_GROUP],
        "instance_groups_dict": environment["instance_groups_dict"],
        "is_hetero": False,
        "is_master": True,
        "is_modelparallel_enabled": None,
        "job_name": job_name,
        "log_level": log_level,
        "master_hostname": CURRENT_HOST,
        "model_dir": environment["model_dir"],
        "module_dir": submit_dir,
        "module_name": environment["module_name"],
        "network_interface_name": NETWORK_INTERFACE,
        "num_cpus": environment["num_cpus"],
        "num_gpus": 0,
        "output_data_dir": environment["output_data_dir"],
        "output_dir": environment["output_dir"],
        "output_intermediate_dir": environment["output_intermediate_dir"],
        "resource_config": resources,
        "user_entry_point": program,
    }
    environment["training_env"] = training_env
    for name, path in channel_dirs.items():
        environment[f"channel_{name}"] = path
    for key, value in user_hps.items():
        environment[f"hp_{key}"] = value
    env = {f"SM_{key.upper()}": env_value(value) for key, value in environment.items()}
    return TrainingContract(env=env, user_args=user_args, hyperparameters=user_hps)


def write_processing_config(
    request: Mapping[str, Any], sandbox: Sandbox, *, job_name: str, job_arn: str
) -> None:
    """/opt/ml/config/processingjobconfig.json (the job's request, as SageMaker writes
    it) and resourceconfig.json."""
    instance_type = str(
        request.get("ProcessingResources", {}).get("ClusterConfig", {}).get("InstanceType", "local")
    )
    config = {**request, "ProcessingJobName": job_name, "ProcessingJobArn": job_arn}
    write_json(sandbox.path("/opt/ml/config/processingjobconfig.json"), config)
    write_json(sandbox.path("/opt/ml/config/resourceconfig.json"), resource_config(instance_type))


def scrape_metric_lines(text: str, definitions: list[Mapping[str, str]]) -> dict[str, float]:
    """The last value each MetricDefinitions regex captures, applied to each log line
    on its own as SageMaker does (so ``^`` anchors at a line's start), and to the line as
    CloudWatch Logs holds it: a tab is ``#011`` there, which is what the XGBoost metric
    regexes (``...#011validation-rmse:...``) match."""
    metrics: dict[str, float] = {}
    compiled = [(d["Name"], re.compile(d["Regex"])) for d in definitions]
    for line in text.replace("\t", "#011").splitlines():
        for name, regex in compiled:
            for match in regex.finditer(line):
                try:
                    metrics[name] = float(match.group(1))
                except (IndexError, TypeError, ValueError):
                    continue
    return metrics
