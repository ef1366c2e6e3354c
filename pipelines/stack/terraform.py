"""Run Terraform on the infra/ root for one deployment (local emulator or AWS env).

Each deployment gets its own Terraform data directory (TF_DATA_DIR) under the
state dir, so local and AWS working data never mix. The committed root declares
an S3 backend; for the local target a generated ``backend_override.tf.json``
swaps in a local backend whose state file lives under the git-ignored state dir.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable, Mapping
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import python_terraform
from python_terraform import IsFlagged, IsNotFlagged

from pipelines.config.deployment import Deployment
from pipelines.config.settings import Settings
from pipelines.core.errors import MlopsError
from pipelines.core.files import write_atomically

BACKEND_OVERRIDE = "backend_override.tf.json"
LOCK_FILE = ".terraform.lock.hcl"
# Where Terraform itself looks for implicit local mirrors, plus the path CI images
# commonly pre-bake one at. Used only when nothing is configured.
_MIRROR_CANDIDATES = (
    Path.home() / ".terraform.d" / "plugins",
    Path.home() / ".local" / "share" / "terraform" / "plugins",
    Path("/usr/local/share/terraform/plugins"),
    Path("/usr/share/terraform/plugins"),
    Path("/opt/tf-plugins"),
)
_LOCKED_AWS_VERSION = re.compile(
    r'provider "registry\.terraform\.io/hashicorp/aws" \{\s*version\s*=\s*"([^"]+)"'
)


class TerraformError(MlopsError):
    """A Terraform command failed; the message carries its error output."""


@dataclass(frozen=True)
class PlanResult:
    plan_file: Path
    has_changes: bool


# --- provider installation ------------------------------------------------------------


def terraform_platform() -> str:
    system = platform.system().lower()
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(
        machine, machine
    )
    return f"{system}_{arch}"


def locked_aws_provider_version(infra_dir: Path) -> str | None:
    try:
        match = _LOCKED_AWS_VERSION.search((infra_dir / LOCK_FILE).read_text())
    except FileNotFoundError:
        return None
    return match.group(1) if match else None


def mirror_has_provider(mirror: Path, version: str | None, tf_platform: str) -> bool:
    provider_dir = mirror / "registry.terraform.io" / "hashicorp" / "aws"
    if version is None:
        return provider_dir.is_dir()
    return (provider_dir / version / tf_platform).is_dir()


def find_provider_mirror(settings: Settings) -> Path | None:
    """The configured mirror (which must exist), else one found in the usual places
    that holds the locked AWS provider for this platform, else None (public registry)."""
    version = locked_aws_provider_version(settings.infra_dir)
    if settings.provider_mirror is not None:
        mirror = settings.provider_mirror
        if not (mirror / "registry.terraform.io").is_dir():
            raise MlopsError(
                f"The configured Terraform provider mirror {mirror} has no "
                "registry.terraform.io/ folder. Point MLOPS_TF_PROVIDER_MIRROR (or "
                "mlops.terraform.provider_mirror) at the folder that holds it."
            )
        return mirror
    for candidate in _MIRROR_CANDIDATES:
        if mirror_has_provider(candidate, version, terraform_platform()):
            return candidate
    return None


def cli_config_text(mirror: Path) -> str:
    """A CLI config that installs the mirrored providers from disk, others directly."""
    registry = mirror / "registry.terraform.io"
    mirrored = sorted(
        f"registry.terraform.io/{namespace.name}/{provider.name}"
        for namespace in registry.iterdir()
        if namespace.is_dir()
        for provider in namespace.iterdir()
        if provider.is_dir()
    )
    patterns = ", ".join(json.dumps(p) for p in mirrored)
    return (
        "# Written by pipelines/stack/terraform.py: install providers from the local mirror.\n"
        "provider_installation {\n"
        "  filesystem_mirror {\n"
        f"    path    = {json.dumps(str(mirror))}\n"
        f"    include = [{patterns}]\n"
        "  }\n"
        "  direct {\n"
        f"    exclude = [{patterns}]\n"
        "  }\n"
        "}\n"
    )


def terraform_base_env(settings: Settings, base: Mapping[str, str]) -> dict[str, str]:
    """Environment for any Terraform process: the mirror's CLI config when one exists."""
    env = dict(base)
    env["TF_IN_AUTOMATION"] = "1"
    env["TF_INPUT"] = "0"
    env.pop("TF_WORKSPACE", None)
    mirror = find_provider_mirror(settings)
    if mirror is not None:
        config = settings.state_dir / "terraform" / "cli.tfrc"
        config.parent.mkdir(parents=True, exist_ok=True)
        text = cli_config_text(mirror)
        if not config.is_file() or config.read_text() != text:
            write_atomically(config, text.encode())
        # Overrides any TF_CLI_CONFIG_FILE from the user's environment for these
        # processes only; the machine's own configuration is left alone.
        env["TF_CLI_CONFIG_FILE"] = str(config)
    return env


def write_local_backend_override(infra_dir: Path) -> Path:
    """Swap the root's S3 backend for a local one (local target only). The state file's
    path is given at init (-backend-config=path=...), so this file is the same for every
    checkout and state directory."""
    override = infra_dir / BACKEND_OVERRIDE
    text = json.dumps({"terraform": {"backend": {"local": {}}}}, indent=2) + "\n"
    if not override.is_file() or override.read_text() != text:
        write_atomically(override, text.encode())
    return override


def require_terraform() -> str:
    binary = shutil.which("terraform")
    if binary is None:
        raise MlopsError(
            "Terraform is not installed or not on PATH. Install Terraform >= 1.5 "
            "(https://developer.hashicorp.com/terraform/install) and retry."
        )
    return binary


# --- the wrapper ----------------------------------------------------------------------


class _Terraform(python_terraform.Terraform):
    """python_terraform with an explicit environment instead of a copy of os.environ,
    and optional line-by-line streaming of the output."""

    def __init__(
        self,
        working_dir: Path,
        env: Mapping[str, str],
        on_output: Callable[[str], None] | None,
    ) -> None:
        super().__init__(working_dir=str(working_dir), terraform_bin_path=require_terraform())
        self._env = dict(env)
        self._on_output = on_output

    def read_state_file(self, file_path: str | None = None) -> None:
        # The state lives in a backend this class knows nothing about.
        self.tfstate = None

    def cmd(  # type: ignore[override]
        self,
        cmd: str,
        *args: Any,
        capture_output: bool = True,
        raise_on_error: bool = True,
        synchronous: bool = True,
        **kwargs: Any,
    ) -> tuple[int, str, str]:
        command = self.generate_cmd_string(cmd, *args, **kwargs)
        try:
            process = subprocess.Popen(
                command,
                cwd=self.working_dir,
                env=self._env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            lines: list[str] = []
            assert process.stdout is not None
            for line in process.stdout:
                lines.append(line)
                if self._on_output is not None:
                    self._on_output(line.rstrip("\n"))
            stderr = process.stderr.read() if process.stderr else ""
            returncode = process.wait()
        finally:
            self.temp_var_files.clean_up()
        out = "".join(lines)
        failed = returncode not in (0, 2) or (returncode == 2 and cmd != "plan")
        # Terraform reports a state it cannot read as a failure to lock it too; only
        # "Lock Info" means another run really holds the lock.
        if failed and raise_on_error and "Lock Info:" in stderr:
            raise TerraformError(
                f"Another Terraform run holds the state lock in {self.working_dir}; "
                "wait for it to finish and run the task again. If no other task runs, "
                "the lock is stale: `terraform force-unlock <ID>` in that folder removes it."
            )
        if failed and raise_on_error:
            raise TerraformError(
                f"`terraform {cmd}` failed (exit {returncode}) in {self.working_dir}:\n"
                f"{_clean(stderr) or _clean(out)[-4000:]}"
            )
        return returncode, out, stderr


def _clean(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*m", "", text).strip()


# Outputs read from a local state file, by the file's signature (TerraformStack.outputs).
_OUTPUTS_SEEN: dict[tuple[str, int, int, int], dict[str, Any]] = {}


@dataclass
class TerraformStack:
    """Terraform operations on infra/ for one deployment."""

    settings: Settings
    deployment: Deployment
    env: Mapping[str, str]
    variables: Mapping[str, Any] = field(default_factory=dict)  # strings, lists, objects
    on_output: Callable[[str], None] | None = None
    # True: state in a local file (the emulator's stacks); False: the S3 backend.
    local_state: bool = False

    def __post_init__(self) -> None:
        env = dict(self.env)
        env["TF_DATA_DIR"] = str(self.data_dir)
        self._tf = _Terraform(self.infra_dir, env, self.on_output)

    # --- paths ------------------------------------------------------------------

    @property
    def infra_dir(self) -> Path:
        return self.settings.infra_dir

    @property
    def work_dir(self) -> Path:
        return self.settings.state_dir / "terraform" / self.deployment.slug

    @property
    def data_dir(self) -> Path:
        return self.work_dir / "data"

    @property
    def local_state_file(self) -> Path:
        return self.work_dir / "terraform.tfstate"

    @property
    def applied_state_copy(self) -> Path:
        """The local state as it was after the last successful infra-up. Terraform
        rewrites its state file in place (a crash mid-write cuts it short) and its own
        ``.backup`` is the state *before* its last write: this copy, written atomically,
        is what the emulator held after the last apply."""
        return self.work_dir / "terraform.tfstate.applied"

    @property
    def var_file(self) -> Path:
        return self.infra_dir / "envs" / f"{self.deployment.env}.tfvars"

    @property
    def backend_config_file(self) -> Path:
        return self.infra_dir / "envs" / f"{self.deployment.env}.s3.tfbackend"

    # --- commands -----------------------------------------------------------------

    def init(self) -> bool:
        """Initialise when the configuration changed since the last init; True if run."""
        if not self.var_file.is_file():
            raise MlopsError(
                f"No variables file for environment {self.deployment.env!r}: expected "
                f"{self.var_file}."
            )
        self.check_local_state()
        backend_args = self.configure_backend()
        fingerprint = self._init_fingerprint(backend_args)
        marker = self.data_dir / ".mlops-init"
        if marker.is_file() and marker.read_text() == fingerprint:
            return False
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._tf.init(
            backend_config=backend_args or None,
            reconfigure=IsFlagged,
            lockfile="readonly",
            no_color=IsFlagged,
            input=False,
        )
        write_atomically(marker, fingerprint.encode())
        return True

    def plan(self, plan_file: Path | None = None, *, destroy: bool = False) -> PlanResult:
        plan_file = plan_file or self.work_dir / ("destroy.tfplan" if destroy else "tfplan")
        plan_file.parent.mkdir(parents=True, exist_ok=True)
        code, _, _ = self._tf.plan(
            out=str(plan_file),
            var_file=str(self.var_file),
            var=dict(self.variables),
            detailed_exitcode=IsFlagged,
            destroy=IsFlagged if destroy else IsNotFlagged,
            lock_timeout="60s",
        )
        return PlanResult(plan_file=plan_file, has_changes=code == 2)

    def apply(self, plan_file: Path) -> None:
        # A saved plan carries its variables; passing them again is an error.
        self._tf.cmd("apply", str(plan_file), no_color=IsFlagged, input=False, lock_timeout="60s")

    def destroy(self) -> None:
        self._tf.destroy(
            force=IsNotFlagged,
            auto_approve=IsFlagged,
            var_file=str(self.var_file),
            var=dict(self.variables),
            lock_timeout="60s",
        )
        self.applied_state_copy.unlink(missing_ok=True)

    def outputs(self) -> dict[str, Any]:
        """Output values by name; empty when nothing has been applied.

        A local state's outputs are kept for the process while its file is unchanged:
        a long-lived reader (the console) asks at every page, and each `terraform output`
        costs a process start of a second. Remote state is asked every time."""
        key = self._state_signature()
        if key is not None and key in _OUTPUTS_SEEN:
            return deepcopy(_OUTPUTS_SEEN[key])
        _, out, _ = self._tf.cmd("output", json=IsFlagged, no_color=IsFlagged)
        raw = json.loads(out or "{}")
        found = {name: entry.get("value") for name, entry in raw.items()}
        if key is not None and key == self._state_signature():  # unchanged while read
            _OUTPUTS_SEEN[key] = deepcopy(found)
        return found

    def _state_signature(self) -> tuple[str, int, int, int] | None:
        if not self.local_state:
            return None
        try:
            stat = self.local_state_file.stat()
        except OSError:
            return None
        return (str(self.local_state_file), stat.st_ino, stat.st_size, stat.st_mtime_ns)

    def show_json(self, plan_file: Path) -> dict[str, Any]:
        _, out, _ = self._tf.cmd("show", str(plan_file), json=IsFlagged, no_color=IsFlagged)
        return json.loads(out)

    def show_text(self, plan_file: Path) -> str:
        _, out, _ = self._tf.cmd("show", str(plan_file), no_color=IsFlagged)
        return out

    def resource_count(self) -> int:
        _, out, _ = self._tf.cmd("state list", raise_on_error=False)
        return len([line for line in (out or "").splitlines() if line.strip()])

    def discard_local_state(self) -> bool:
        """Forget local state whose resources died with a previous emulator process."""
        if not self.local_state or not self.local_state_file.is_file():
            return False
        self.local_state_file.replace(self.local_state_file.with_suffix(".tfstate.stale"))
        self.applied_state_copy.unlink(missing_ok=True)
        return True

    def check_local_state(self) -> None:
        """Refuse to run Terraform on a damaged local state file, naming the recovery:
        Terraform itself calls it a state lock held by another run."""
        if not self.local_state or not self.local_state_file.is_file():
            return
        problem = state_file_problem(self.local_state_file)
        if problem is None:
            return
        state = self.local_state_file
        copies = []
        for copy in (self.applied_state_copy, state.with_name(state.name + ".backup")):
            if state_file_problem(copy) is None:
                serial = json.loads(copy.read_text()).get("serial", 0)
                copies.append((serial, copy == self.applied_state_copy, copy))
        if copies:
            serial, _, copy = max(copies)
            recovery = (
                f"Restore the good copy {copy.name} (serial {serial}): `cp {copy} {state}`, "
                "then run `invoke infra-up` again; it re-reads every resource from the "
                "emulator and applies what the copy lacks."
            )
        else:
            recovery = (
                f"No good copy is kept: move it aside (`mv {state} {state}.damaged`), then "
                "`invoke destroy --yes` and `invoke infra-up` rebuild the stack in a fresh "
                "emulator (its data and model versions are deleted)."
            )
        raise TerraformError(f"The Terraform state {state} is damaged ({problem}). {recovery}")

    def keep_applied_state(self) -> None:
        """After a successful infra-up: an atomic copy of the local state."""
        if self.local_state and state_file_problem(self.local_state_file) is None:
            write_atomically(self.applied_state_copy, self.local_state_file.read_bytes())

    # --- helpers ----------------------------------------------------------------------

    def configure_backend(self) -> list[str]:
        """Write or remove the local backend override; return the -backend-config values
        for init (the local state path, or the S3 partial file and bucket)."""
        if self.local_state:
            write_local_backend_override(self.infra_dir)
            return [f"path={self.local_state_file}"]
        (self.infra_dir / BACKEND_OVERRIDE).unlink(missing_ok=True)
        if not self.backend_config_file.is_file():
            raise MlopsError(
                f"No backend configuration for environment {self.deployment.env!r}: expected "
                f"{self.backend_config_file}."
            )
        if not self.settings.state_bucket:
            raise MlopsError(
                "No Terraform state bucket configured for AWS environments: set "
                "MLOPS_TF_STATE_BUCKET or mlops.terraform.state_bucket in invoke.yaml "
                "(docs/aws.md)."
            )
        # Each list item becomes one -backend-config flag: the partial file, then the bucket.
        return [str(self.backend_config_file), f"bucket={self.settings.state_bucket}"]

    def _init_fingerprint(self, backend_args: list[str]) -> str:
        digest = hashlib.sha256()
        for path in sorted(self.infra_dir.rglob("*")):
            if path.is_file() and (
                path.suffix in (".tf", ".json", ".tfbackend") or path.name == LOCK_FILE
            ):
                digest.update(str(path.relative_to(self.infra_dir)).encode())
                digest.update(path.read_bytes())
        digest.update(json.dumps(backend_args).encode())
        digest.update(self._tf._env.get("TF_CLI_CONFIG_FILE", "").encode())
        return digest.hexdigest()


def state_file_problem(path: Path) -> str | None:
    """What makes ``path`` an unreadable Terraform state, or None (missing counts)."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return "missing"
    except (OSError, UnicodeDecodeError) as error:
        return f"unreadable: {error}"
    if not text.strip():
        return "empty"
    try:
        state = json.loads(text)
    except json.JSONDecodeError as error:
        return f"not valid JSON: it breaks off at byte {error.pos} of {len(text)}"
    if not isinstance(state, dict) or not isinstance(state.get("version"), int):
        return "not a Terraform state: it has no version"
    return None


def environment_without_terraform_noise(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ minus the variables that would redirect our Terraform runs."""
    env = dict(os.environ if base is None else base)
    for key in ("TF_DATA_DIR", "TF_WORKSPACE", "TF_CLI_ARGS", "TF_CLI_ARGS_init"):
        env.pop(key, None)
    return env


def validate_configuration(settings: Settings, base_env: Mapping[str, str]) -> str:
    """terraform fmt -check and validate on infra/, without a backend or credentials."""
    env = terraform_base_env(settings, base_env)
    env["TF_DATA_DIR"] = str(settings.state_dir / "terraform" / "validate")
    binary = require_terraform()
    steps = (
        ["fmt", "-check", "-recursive", "-diff", "-no-color"],
        ["init", "-backend=false", "-lockfile=readonly", "-input=false", "-no-color"],
        ["validate", "-no-color"],
    )
    output = []
    for step in steps:
        result = subprocess.run(
            [binary, *step], cwd=settings.infra_dir, env=env, capture_output=True, text=True
        )
        if result.returncode != 0:
            what = (
                "is not formatted (run `terraform fmt -recursive infra`)"
                if step[0] == "fmt"
                else "failed"
            )
            raise TerraformError(
                f"`terraform {step[0]}` {what}:\n{_clean(result.stdout + result.stderr)}"
            )
        output.append(_clean(result.stdout))
    return output[-1]
