"""Runtime profiles: which image runs where, interpreter discovery, the cached builds."""

from __future__ import annotations

import subprocess
import threading
from dataclasses import replace
from pathlib import Path

import pytest
from sagemaker import image_uris

from pipelines.containers import interpreters
from pipelines.containers.environments import EnvironmentCache
from pipelines.containers.interpreters import NoInterpreterError, find_interpreter
from pipelines.containers.profiles import profile_for_image, profiles
from pipelines.core.errors import MlopsError


def sdk_image(version: str, scope: str) -> str:
    return image_uris.retrieve(
        "sklearn",
        region="eu-west-1",
        version=version,
        image_scope=scope,
        instance_type="ml.m5.large",
    )


@pytest.mark.parametrize("scope", ["training", "inference"])
def test_the_sdks_1_2_1_images_map_to_the_containers_python_and_pins(scope):
    profile = profile_for_image(sdk_image("1.2-1", scope))
    assert profile is not None
    assert profile.name == "sklearn-1.2-1"
    assert profile.python == "3.9"
    for pin in ("scikit-learn==1.2.1", "pandas==1.1.3", "numpy==1.24.1", "scipy==1.8.0"):
        assert pin in profile.requirements
    # The pins cite the container source they were copied from.
    assert "aws/sagemaker-scikit-learn-container" in profile.source.read_text()


def test_the_1_4_2_training_image_maps_to_python_3_12():
    profile = profile_for_image(sdk_image("1.4-2", "training"))
    assert profile is not None
    assert (profile.python, profile.name) == ("3.12", "sklearn-1.4-2")
    assert "pandas==2.2.3" in profile.requirements


@pytest.mark.parametrize("name", sorted(profiles()))
def test_every_library_is_pinned_exactly_to_what_the_image_resolved(name):
    """Ranges would resolve to today's releases, not the image's: every requirement is
    an exact pin (the files say how the unpinned ones were resolved at the image's build)."""
    profile = profiles()[name]
    assert all("==" in r and not any(c in r for c in "<>~!,") for r in profile.requirements)


def test_the_1_2_1_image_got_the_releases_of_its_build_date():
    """joblib, threadpoolctl and pytz are unpinned in the container's requirements.txt;
    the image built from aws/sagemaker-scikit-learn-container c59fb77 (2025-09-22) got
    what pip resolved then."""
    requirements = profiles()["sklearn-1.2-1"].requirements
    for pin in ("joblib==1.5.2", "threadpoolctl==3.6.0", "pytz==2025.2"):
        assert pin in requirements


def test_images_without_a_profile_are_not_guessed():
    assert profile_for_image("123456789012.dkr.ecr.us-east-1.amazonaws.com/my-image:1") is None
    assert profile_for_image("sagemaker-scikit-learn:0.23-1-cpu-py3") is None


def test_the_environment_key_follows_the_pins():
    profile = profiles()["sklearn-1.2-1"]
    changed = replace(profile, requirements=(*profile.requirements[:-1], "pytz==2020.1"))
    assert profile.key() != changed.key()
    assert profile.key() != profile.key(("cheroot==11.1.2",))
    assert profile.key() == profiles()["sklearn-1.2-1"].key()


def test_no_interpreter_means_a_message_on_how_to_get_one(monkeypatch, tmp_path):
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NoInterpreterError) as caught:
        find_interpreter("3.9", uv_bin=None)
    message = str(caught.value)
    assert "No Python 3.9 interpreter found" in message
    assert "uv python install 3.9" in message
    assert "pyenv install 3.9" in message


def test_a_broken_candidate_is_skipped(monkeypatch, tmp_path):
    # A pyenv shim on PATH exits non-zero unless its version is selected.
    shim = tmp_path / "python3.9"
    shim.write_text("#!/bin/sh\necho 'pyenv: python3.9: command not found' >&2\nexit 127\n")
    shim.chmod(0o755)
    monkeypatch.setenv("PYENV_ROOT", str(tmp_path / "no-pyenv"))
    monkeypatch.setenv("PATH", str(tmp_path))
    assert interpreters.probe(shim) is None
    with pytest.raises(NoInterpreterError):
        find_interpreter("3.9", uv_bin=None)


def test_pyenv_versions_are_found_by_their_real_path():
    found = find_interpreter("3.9")
    assert found.version.startswith("3.9.")
    assert Path(found.path).exists()


def test_two_runs_build_one_environment_once_and_atomically(tmp_path):
    progress: list[str] = []
    cache = EnvironmentCache(tmp_path, progress=progress.append)
    profile = profiles()["sklearn-1.2-1"]
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.ensure(profile))) for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results[0] == results[1]
    assert sum(line.startswith("Building the sklearn 1.2-1 runtime") for line in progress) == 1
    assert results[0].label.startswith("sklearn 1.2-1 · Python 3.9.")
    # Only the finished environment and its lock remain: no staging folder.
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        f"sklearn-1.2-1-{profile.key()}"
    ]
    versions = subprocess.run(
        [
            results[0].python,
            "-c",
            "import sklearn, pandas, numpy, scipy, sys; "
            "print(sys.version_info[:2], sklearn.__version__, pandas.__version__, "
            "numpy.__version__, scipy.__version__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert versions == "(3, 9) 1.2.1 1.1.3 1.24.1 1.8.0"
    # A second use reads the cache: no build.
    assert EnvironmentCache(tmp_path, progress=progress.append).ensure(profile) == results[0]
    assert len(progress) == 2  # "Building ..." and "Built ..." once


def test_a_failed_build_leaves_nothing_behind(tmp_path):
    profile = replace(profiles()["sklearn-1.2-1"], requirements=("not a requirement ===",))
    with pytest.raises(MlopsError, match="uv pip failed"):
        EnvironmentCache(tmp_path).ensure(profile)
    assert [p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")] == []


@pytest.mark.parametrize(
    ("version", "python", "xgboost"),
    [("1.7-1", "3.9", "xgboost==1.7.4"), ("3.0-5", "3.10", "xgboost-cpu==3.0.5")],
)
@pytest.mark.parametrize("scope", ["training", "inference"])
def test_the_sdks_xgboost_images_map_to_the_containers_python_and_pins(
    version, python, xgboost, scope
):
    """The built-in algorithm, the framework estimator and serving share one image."""
    image = image_uris.retrieve("xgboost", region="eu-west-1", version=version, image_scope=scope)
    profile = profile_for_image(image)
    assert profile is not None
    assert (profile.name, profile.python) == (f"xgboost-{version}", python)
    assert xgboost in profile.requirements
    assert any(r.startswith("boto3==") for r in profile.requirements)
    assert "aws/sagemaker-xgboost-container" in profile.source.read_text()


def test_an_xgboost_version_without_a_profile_has_none():
    image = image_uris.retrieve("xgboost", region="eu-west-1", version="1.5-1")
    assert profile_for_image(image) is None
