"""Build each runtime profile's environment once with uv, and reuse it.

An environment lives in ``<cache>/<profile>-<key>/`` where the key hashes the Python
version, the pins and any extras, so a change to the pins builds a new one. It is
built in a temporary folder and renamed into place, under a file lock, so two runs
starting together build it once and never see a half-built one.
"""

from __future__ import annotations

import fcntl
import json
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pipelines.containers.interpreters import find_interpreter
from pipelines.containers.profiles import RuntimeProfile
from pipelines.core.errors import MlopsError

_MARKER = "mlops-runtime.json"


@dataclass(frozen=True)
class JobRuntime:
    """The interpreter a job runs with, and how execution-show names it."""

    python: str
    label: str
    host: bool = False

    def as_record(self) -> dict[str, object]:
        return {"python": self.python, "label": self.label, "host": self.host}

    @classmethod
    def from_record(cls, record: dict[str, object]) -> JobRuntime:
        return cls(str(record["python"]), str(record["label"]), bool(record.get("host")))


def uv_binary() -> str:
    from uv import find_uv_bin  # the uv PyPI package ships the binary

    return find_uv_bin()


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class EnvironmentCache:
    """Profile environments under ``root``, built on first use."""

    def __init__(
        self,
        root: Path,
        *,
        progress: Callable[[str], None] | None = None,
        uv_bin: str | None = None,
    ) -> None:
        self.root = root
        self.progress = progress or (lambda line: None)
        self.uv_bin = uv_bin or uv_binary()

    def folder(self, profile: RuntimeProfile, extras: tuple[str, ...] = ()) -> Path:
        return self.root / f"{profile.name}-{profile.key(extras)}"

    def ready(self, profile: RuntimeProfile, extras: tuple[str, ...] = ()) -> bool:
        """Whether the profile's environment is built (no lock, no build)."""
        return self._read(self.folder(profile, extras)) is not None

    def ensure(self, profile: RuntimeProfile, extras: tuple[str, ...] = ()) -> JobRuntime:
        """The profile's environment, built now if it does not exist yet."""
        folder = self.folder(profile, extras)
        ready = self._read(folder)
        if ready is not None:
            return ready
        with _locked(self.root / f".{folder.name}.lock"):
            ready = self._read(folder)  # another run may have built it while we waited
            if ready is not None:
                return ready
            return self._build(profile, extras, folder)

    def _read(self, folder: Path) -> JobRuntime | None:
        try:
            record = json.loads((folder / _MARKER).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        runtime = JobRuntime.from_record(record)
        return runtime if Path(runtime.python).exists() else None

    def _build(self, profile: RuntimeProfile, extras: tuple[str, ...], folder: Path) -> JobRuntime:
        interpreter = find_interpreter(profile.python, self.uv_bin)
        self.progress(
            f"Building the {profile.label} runtime (Python {interpreter.version}, "
            f"{len(profile.requirements) + len(extras)} pinned packages) with uv, once..."
        )
        started = time.monotonic()
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=self.root))
        try:
            # --relocatable: the environment keeps working after the rename below.
            self._uv(
                "venv", "--quiet", "--relocatable", "--python", str(interpreter.path), str(staging)
            )
            python = str(staging / "bin" / "python")
            self._uv("pip", "install", "--quiet", "--python", python, *profile.requirements)
            if extras:
                # Installed over the image's packages, as the container's toolkit runs
                # ``pip install -r requirements.txt``: an extra may upgrade a pin.
                self._uv("pip", "install", "--quiet", "--python", python, *extras)
            runtime = JobRuntime(
                python=str(folder / "bin" / "python"),
                label=f"{profile.label} · Python {interpreter.version}",
            )
            (staging / _MARKER).write_text(
                json.dumps(
                    {
                        **runtime.as_record(),
                        "requirements": list(profile.requirements),
                        "extras": list(extras),
                        "source": profile.source.name,
                    }
                )
            )
            staging.rename(folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        self.progress(f"Built the {profile.label} runtime in {time.monotonic() - started:.1f} s.")
        return runtime

    def _uv(self, *args: str) -> None:
        result = subprocess.run(
            [self.uv_bin, *args], capture_output=True, text=True, check=False, timeout=1800
        )
        if result.returncode != 0:
            detail = (result.stderr or result.stdout).strip().splitlines()[-5:]
            raise MlopsError(f"uv {args[0]} failed while building a runtime: " + " ".join(detail))
