"""Find a real interpreter for a profile's Python version on this machine.

Order: uv's managed Pythons (``uv python find``, offline when installed), pyenv's
versions folder, then ``pythonX.Y`` on PATH. Each candidate is run once to confirm
its version: pyenv's shims are on PATH but fail unless their version is selected.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import MlopsError

_PROBE = "import sys; print('%d.%d.%d' % sys.version_info[:3]); print(sys.executable)"


@dataclass(frozen=True)
class Interpreter:
    path: Path
    version: str  # full, e.g. "3.9.18"


class NoInterpreterError(MlopsError):
    """No interpreter of the version a runtime profile needs."""


def _candidates(version: str, uv_bin: str | None) -> Iterator[Path]:
    if uv_bin:
        try:
            found = subprocess.run(
                [uv_bin, "python", "find", "--no-python-downloads", version],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
            if found.returncode == 0 and found.stdout.strip():
                yield Path(found.stdout.strip())
        except (OSError, subprocess.TimeoutExpired):
            pass
    pyenv_root = os.environ.get("PYENV_ROOT") or str(Path.home() / ".pyenv")
    versions = Path(pyenv_root) / "versions"
    if versions.is_dir():
        # Newest patch release first: 3.9.18 before 3.9.2.
        matches = [p for p in versions.iterdir() if p.name.startswith(version + ".")]
        for folder in sorted(matches, key=lambda p: _version_key(p.name), reverse=True):
            yield folder / "bin" / f"python{version}"
    on_path = shutil.which(f"python{version}")
    if on_path:
        yield Path(on_path)


def _version_key(name: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else -1 for part in name.split("."))


def probe(path: Path) -> Interpreter | None:
    """Run the candidate; None unless it starts."""
    try:
        result = subprocess.run(
            [str(path), "-c", _PROBE], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:
        return None
    full, executable = result.stdout.split()[:2]
    return Interpreter(Path(executable), full)


def find_interpreter(version: str, uv_bin: str | None = None) -> Interpreter:
    """A working interpreter of ``version`` (major.minor), or a message saying how to get one."""
    for candidate in _candidates(version, uv_bin):
        found = probe(candidate)
        if found is not None and found.version.rsplit(".", 1)[0] == version:
            return found
    raise NoInterpreterError(
        f"No Python {version} interpreter found (looked in uv's managed Pythons, pyenv and "
        f"PATH); the SageMaker container runs Python {version}, so local jobs need it. "
        f"Install one with `uv python install {version}` or `pyenv install {version}`, "
        "or run on the host interpreter with `invoke pipeline-run --host-runtime` "
        "(results may then not hold on SageMaker)."
    )
