"""Which SageMaker framework images have a local runtime profile, and what each pins.

The pins live in ``pins/<framework>-<version>.txt``: one ``python X.Y`` line, the
image's own environment as ``env NAME=VALUE`` lines (its Dockerfiles' ENV), then
requirement lines, with the container source they were copied from in comments.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PINS_DIR = Path(__file__).resolve().parent / "pins"
# The image repositories a profile can stand for, by framework:
# <account>.dkr.ecr.<region>.amazonaws.com/sagemaker-scikit-learn:1.2-1-cpu-py3
# <account>.dkr.ecr.<region>.amazonaws.com/sagemaker-xgboost:1.7-1 (the built-in algorithm
# and the XGBoost framework estimator share the image)
_IMAGES = {
    "sklearn": re.compile(r"/sagemaker-scikit-learn:(?P<version>\d+\.\d+-\d+)(?:-|$)"),
    "xgboost": re.compile(r"/sagemaker-xgboost:(?P<version>\d+\.\d+-\d+)(?:-|$)"),
}


@dataclass(frozen=True)
class RuntimeProfile:
    """One container image family's runtime: its Python and its libraries."""

    framework: str
    version: str
    python: str  # major.minor, e.g. "3.9"
    requirements: tuple[str, ...]
    source: Path
    # The image's ENV (locale, encoding, SM_* paths), as every job in it starts with.
    environment: tuple[tuple[str, str], ...] = ()

    @property
    def name(self) -> str:
        return f"{self.framework}-{self.version}"

    @property
    def label(self) -> str:
        return f"{self.framework} {self.version}"

    def key(self, extras: tuple[str, ...] = ()) -> str:
        """Content hash of everything that shapes the environment."""
        payload = "\n".join([self.python, *self.requirements, "--extras--", *extras])
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def parse_pins(path: Path, framework: str, version: str) -> RuntimeProfile:
    python: str | None = None
    requirements: list[str] = []
    environment: list[tuple[str, str]] = []
    for raw in path.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        if line.startswith("python "):
            python = line.split()[1]
        elif line.startswith("env "):
            name, _, value = line.removeprefix("env ").partition("=")
            environment.append((name.strip(), value.strip()))
        else:
            requirements.append(line)
    if python is None:
        raise ValueError(f"{path} has no 'python X.Y' line")
    return RuntimeProfile(framework, version, python, tuple(requirements), path, tuple(environment))


@cache
def profiles() -> dict[str, RuntimeProfile]:
    """Every profile kept in the repository, by name (``sklearn-1.2-1``)."""
    found = {}
    for path in sorted(PINS_DIR.glob("*.txt")):
        framework, _, version = path.stem.partition("-")
        profile = parse_pins(path, framework, version)
        found[profile.name] = profile
    return found


def image_framework(image_uri: str) -> tuple[str, str] | None:
    """The framework and version a SageMaker framework image URI names, profiled or not
    (``("xgboost", "1.5-1")``); None for any other image."""
    for framework, pattern in _IMAGES.items():
        match = pattern.search(image_uri)
        if match is not None:
            return framework, match.group("version")
    return None


def profile_for_image(image_uri: str) -> RuntimeProfile | None:
    """The profile of a SageMaker image URI, or None when the image has none."""
    found = image_framework(image_uri)
    return profiles().get(f"{found[0]}-{found[1]}") if found else None
