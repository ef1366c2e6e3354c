"""The git post-commit hook: a ``CodeCommit Repository State Change`` for the new commit.

``invoke hooks-install`` writes a small ``post-commit`` script that runs
``python -m pipelines.automation.git_hook`` with the checkout's own ``.venv``. It
sends the event CodeCommit would send for a push of this commit to its branch, to the
emulator's EventBridge; the push rule (``referenceName: main``) decides whether
anything happens. With the emulator down or no stack applied, it says so and exits 0:
a commit never fails because of automation.
"""

from __future__ import annotations

import getpass
import stat
import subprocess
import sys
from pathlib import Path

from pipelines.core.errors import MlopsError

MARKER = "# installed by `invoke hooks-install` (pipelines/automation/git_hook.py)"
HOOK_SCRIPT = f"""#!/bin/sh
{MARKER}
# Sends a CodeCommit-shaped event for this commit to the local emulator's EventBridge.
root="$(git rev-parse --show-toplevel)" || exit 0
[ -x "$root/.venv/bin/python" ] || exit 0
cd "$root" && "$root/.venv/bin/python" -m pipelines.automation.git_hook || true
"""


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=root, capture_output=True, text=True, check=True
    ).stdout.strip()


def hooks_dir(root: Path) -> Path:
    path = Path(_git(root, "rev-parse", "--git-path", "hooks"))
    return path if path.is_absolute() else root / path


def install(root: Path) -> tuple[Path, bool]:
    """Write the post-commit hook; (path, whether it changed). A foreign hook is kept."""
    try:
        directory = hooks_dir(root)
    except (subprocess.CalledProcessError, FileNotFoundError) as error:
        raise MlopsError(f"{root} is not a git checkout: {error}") from error
    hook = directory / "post-commit"
    if hook.exists():
        text = hook.read_text()
        if MARKER not in text:
            raise MlopsError(
                f"{hook} exists and is not ours; nothing was changed. Add this line to it "
                f"yourself: {root}/.venv/bin/python -m pipelines.automation.git_hook"
            )
        if text == HOOK_SCRIPT:
            return hook, False
    directory.mkdir(parents=True, exist_ok=True)
    hook.write_text(HOOK_SCRIPT)
    hook.chmod(hook.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return hook, True


def commit_event(root: Path, connection, repository_name: str) -> dict:
    """The event for HEAD, as CodeCommit emits it for a push of HEAD to its branch."""
    from pipelines.events.shapes import codecommit_reference_updated

    branch = _git(root, "rev-parse", "--abbrev-ref", "HEAD")
    commit = _git(root, "rev-parse", "HEAD")
    try:
        old = _git(root, "rev-parse", "HEAD~1")
    except subprocess.CalledProcessError:
        old = None  # the first commit creates the branch
    repository = connection.client("codecommit").get_repository(repositoryName=repository_name)[
        "repositoryMetadata"
    ]
    return codecommit_reference_updated(
        repository["Arn"],
        repository_id=repository["repositoryId"],
        branch=branch,
        commit_id=commit,
        old_commit_id=old,
        caller=f"arn:aws:iam::{repository['accountId']}:user/{getpass.getuser()}",
    )


def main() -> int:
    from pipelines.automation.agent import load_settings
    from pipelines.config.deployment import Deployment
    from pipelines.core.aws import AwsConnection
    from pipelines.events.publish import publish
    from pipelines.stack import stacks as infra

    root = Path(_git(Path.cwd(), "rev-parse", "--show-toplevel"))
    try:
        settings = load_settings(root)
        emulator = infra.emulator_for(settings)
        status = emulator.status()
        if not status.running or status.info is None:
            print("automation: the emulator is not running; no commit event sent.")
            return 0
        deployment = Deployment.parse("local")
        config = infra.read_outputs_from_state(settings, deployment, local_state=True)
        if not config.code_repository_name:
            print("automation: no CodeCommit repository in the stack; no commit event sent.")
            return 0
        connection = AwsConnection.for_emulator(
            status.info.endpoint, emulator.tls.ca_cert, infra.tfvars_region(settings, deployment)
        )
        event = commit_event(root, connection, config.code_repository_name)
        event_id = publish(connection, event)
    except MlopsError as error:
        print(f"automation: no commit event sent: {error}", file=sys.stderr)
        return 0
    detail = event["detail"]
    print(
        f"automation: sent {detail['event']} of {detail['referenceName']} "
        f"({detail['commitId'][:12]}), event {event_id}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
