"""Shared fixtures. No test may reach a real AWS account: credentials are fake and
the user's AWS config files are hidden before anything creates a boto3 client."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from pipelines.config.settings import Settings
from pipelines.core.aws import AwsConnection
from pipelines.emulator import Emulator, EmulatorInfo
from tests.support import free_port, project_copy

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}
_REMOVED = ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL")


# The test tiers, defined here once:
# - fast: no server at all, `python -m pytest -m "not server" -n 2` (under a minute);
# - server: a test that uses a fixture starting a real server (the emulator, and
#   everything built on it), directly or through another fixture, or is marked e2e;
# - soak: the bounded concurrency and crash soak, marked `soak`. It runs only when asked
#   for (`python -m pytest -m soak`): the default run and every other selection leave it
#   out, so the README's test command stays within its budget.
SERVER_FIXTURES = frozenset({"emulator", "emulator_connection", "local_stack"})
SHARED_STACK_TESTS = "tests/e2e/"
# Modules of tests/e2e that apply a stack of their own, beside the shared one on another
# worker: the shared stack's scope is the suite's longest, and they need none of its runs.
# (Giving the automation agent's tests one too measured slower: 17:56 against 16:25, a
# third stack's apply and servers on two cores.)
OWN_STACK_TESTS = ("tests/e2e/test_pipelines.py",)


def _soak_selected(config: pytest.Config) -> bool:
    return "soak" in (config.getoption("markexpr") or "")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not _soak_selected(config):
        soak = [item for item in items if item.get_closest_marker("soak")]
        if soak:
            config.hook.pytest_deselected(items=soak)
            items[:] = [item for item in items if not item.get_closest_marker("soak")]
    # The shared stack's tests first: under pytest-xdist they are one long scope on one
    # worker, so starting them first lets the other workers run everything else beside them
    # instead of after them (the suite's wall time is at least that scope's).
    items.sort(key=lambda item: not item.nodeid.startswith(SHARED_STACK_TESTS))
    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))
        if fixtures & SERVER_FIXTURES or item.get_closest_marker("e2e"):
            item.add_marker(pytest.mark.server)
        # Under pytest-xdist the shared stack stays on one worker only if every test that
        # uses it lives in tests/e2e (see pytest_xdist_make_scheduler).
        if "local_stack" in fixtures and not item.nodeid.startswith(SHARED_STACK_TESTS):
            raise pytest.UsageError(
                f"{item.nodeid} uses local_stack: move it under {SHARED_STACK_TESTS}."
            )


def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object:
    """Under pytest-xdist (`-n N`): whole modules per worker (their module fixtures are
    built once), and every test of tests/e2e on one worker, so the local stack they
    share is applied and trained once, not once per worker."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedStackScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            own = next((p for p in OWN_STACK_TESTS if nodeid.startswith(p)), None)
            if own is not None:
                return own
            if nodeid.startswith(SHARED_STACK_TESTS):
                return SHARED_STACK_TESTS
            return super()._split_scope(nodeid)

    return SharedStackScheduling(config, log)


def pytest_configure(config: pytest.Config) -> None:
    # Session fixtures start before any function-scoped fixture can patch the
    # environment, so the fake identity is installed for the whole process here.
    os.environ.update(FAKE_AWS_ENV)
    # One build of each runtime profile's environment for the whole session (uv's own
    # package cache makes that build a few seconds), shared by every test's settings.
    if "MLOPS_RUNTIME_CACHE" not in os.environ:
        cache = tempfile.mkdtemp(prefix="mlops-runtimes-")
        atexit.register(shutil.rmtree, cache, True)
        os.environ["MLOPS_RUNTIME_CACHE"] = cache
    for key in _REMOVED:
        os.environ.pop(key, None)


@pytest.fixture(autouse=True)
def _fake_aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(key, value)
    for key in _REMOVED:
        monkeypatch.delenv(key, raising=False)


@pytest.fixture(scope="session")
def emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Emulator, EmulatorInfo]]:
    """A real emulator process for the whole session, on a free port."""
    emulator = Emulator(tmp_path_factory.mktemp("emulator"), free_port())
    info, _ = emulator.start()
    try:
        yield emulator, info
    finally:
        emulator.stop()


@pytest.fixture(scope="session")
def emulator_connection(emulator: tuple[Emulator, EmulatorInfo]) -> AwsConnection:
    instance, info = emulator
    return AwsConnection.for_emulator(info.endpoint, instance.tls.ca_cert, "us-east-1")


@pytest.fixture
def tmp_settings(tmp_path: Path) -> Settings:
    """Settings for a throwaway checkout: its own infra/ copy, state dir and port."""
    root = project_copy(tmp_path)
    environ = {
        **os.environ,
        "MLOPS_STATE_DIR": str(root / ".mlops"),
        "MLOPS_EMULATOR_PORT": str(free_port()),
    }
    return Settings.load(None, root=root, environ=environ)


@pytest.fixture(scope="session")
def runtime_cache() -> Path:
    """The session's shared runtime environments (see pytest_configure)."""
    return Path(os.environ["MLOPS_RUNTIME_CACHE"])
