"""Small file helpers the state folder's writers share: private by default, atomic.

The state folder holds datasets, captured requests, Terraform state, the emulator's
snapshots (KMS key material among them) and its keys: nothing in it is for other
users of the machine. :func:`write_privately` makes the process (and every process
it starts: servers, workers, Terraform, jobs) create files 0600 and folders 0700;
:func:`write_atomically` replaces a file so that a reader, or a crash, sees the
old content or the new, never half of either.
"""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

PRIVATE_UMASK = 0o077


def write_privately(state_dir: Path | None = None) -> None:
    """From now on this process and its children write for this user only.

    Called where a process learns where its state folder is (loading the settings,
    the emulator's server), before anything is written. An existing state folder that
    an older version left open to others (0755) is closed (0700): that one change
    makes everything below it unreachable to other users."""
    os.umask(PRIVATE_UMASK)
    if state_dir is not None and state_dir.is_dir():
        status = state_dir.stat()
        if status.st_mode & PRIVATE_UMASK and status.st_uid == os.geteuid():
            state_dir.chmod(status.st_mode & 0o700)


def write_atomically(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data``: a temporary file created with ``mode`` (never
    wider, not even for a moment), written, fsynced, renamed over ``path``; then the
    folder is fsynced so the rename survives a power cut too."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    handle = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Readers see the old file or the new one, never half of either."""
    write_atomically(path, json.dumps(payload, indent=2).encode())
