"""Durable emulator state: snapshots of moto's backends plus a file store for S3 bodies.

moto keeps everything in memory. This module makes every acknowledged write survive
``emulator-down``, ``kill -9`` and a reboot:

* **Group commit.** Every request runs under the shared side of a readers-writer
  lock. A mutating request, once moto has handled it, waits until a snapshot taken
  *after* it has reached the disk, and only then is its response sent: a write the
  client saw succeed is on disk. Concurrent writes share one snapshot.
* **Per-service snapshots.** Only the services written since the last snapshot are
  pickled again (``<state>/snapshots/<service>.pickle``, written to a temporary file,
  fsynced, then renamed), under the exclusive side of the lock, so no request is
  half-way through changing a backend while it is pickled. The snapshot it replaces
  is kept as ``<service>.pickle.previous``: one generation back.
* **Only our own snapshots are loaded.** Unpickling runs code, so a snapshot is
  loaded only if it is owned by this user, not writable by others, and carries an
  HMAC-SHA256 made with this state folder's key (``snapshot.key``, 0600), checked
  before ``pickle.loads``. A damaged or foreign one is set aside and the previous
  generation restored instead, with a sentence saying what was lost.
* **Object bodies outside the pickle.** An S3 body is written once, to
  ``<state>/blobs/<id>``, the first time a snapshot sees its key; the pickle holds
  only the id. On restore, keys read their body from that file on first access, so
  a restart costs the same with 1 GB of objects as with none.

Why not moto's request recorder: replaying requests re-runs them, and moto draws
S3 version ids, execution ids and timestamps at random or from the clock, so a
replayed state differs from the acknowledged one (lineage records version ids).
Replay time also grows with every request ever made, bodies included.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import io
import json
import os
import pickle
import secrets
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from pipelines.core.files import write_atomically

# Actions that only read; every other action of a JSON or query protocol writes.
_READ_PREFIXES = ("Describe", "List", "Get", "Search", "BatchGet", "BatchDescribe", "Query")
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM = "application/x-www-form-urlencoded"
_MAX_FORM_BYTES = 1 << 20


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers (no starvation)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._writers_waiting = 0

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if self._readers == 0:
                    self._cond.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._writers_waiting -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


# --- S3 bodies --------------------------------------------------------------------------


class _BlobBuffer:
    """A read-only stand-in for FakeKey's SpooledTemporaryFile, backed by a blob file.

    Opened on first read; a write (moto never rewrites a stored key's body, but may)
    first turns it into an ordinary in-memory buffer.
    """

    def __init__(self, path: Path, max_size: int) -> None:
        self._path = path
        self._max_size = max_size
        self._file: Any = None

    def _open(self) -> Any:
        if self._file is None:
            self._file = self._path.open("rb")
        return self._file

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._open().seek(offset, whence)

    def read(self, size: int = -1) -> bytes:
        return self._open().read(size)

    def tell(self) -> int:
        return self._open().tell()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def _writable(self) -> Any:
        data = self._path.read_bytes()
        spooled = tempfile.SpooledTemporaryFile(self._max_size)  # noqa: SIM115 - owned by the key
        spooled.write(data)
        spooled.seek(0)
        self.close()
        return spooled


@dataclass
class BlobStore:
    """S3 bodies as files named by a random id, written once and fsynced."""

    root: Path
    persisting: threading.local = field(default_factory=threading.local)
    referenced: set[str] = field(default_factory=set)

    def path(self, blob_id: str) -> Path:
        return self.root / blob_id

    def write(self, data: bytes) -> str:
        blob_id = uuid.uuid4().hex
        write_atomically(self.path(blob_id), data)
        return blob_id

    def sweep(self, keep: set[str]) -> int:
        """Delete blobs no snapshot refers to; returns how many."""
        removed = 0
        for path in self.root.iterdir():
            if path.name not in keep and not path.name.endswith(".tmp"):
                path.unlink(missing_ok=True)
                removed += 1
        return removed


_store: BlobStore | None = None


def _patch_fake_key(store: BlobStore) -> None:
    """Make FakeKey pickle its body as a blob id while a snapshot is being taken.

    Outside a snapshot (moto deep-copies keys when listing versions) pickling keeps
    moto's own behaviour, so no file is written as a side effect of a read.
    """
    from moto.s3.models import FakeKey

    global _store
    _store = store
    if getattr(FakeKey, "_mlops_durable", False):
        return
    original_get = FakeKey.__getstate__
    original_set = FakeKey.__setstate__
    value_property = FakeKey.value

    def set_value(self: Any, new_value: bytes) -> None:
        buffer = self.__dict__.get("_value_buffer")
        if isinstance(buffer, _BlobBuffer):
            self._value_buffer = buffer._writable()
        self.__dict__["_blob"] = None  # the body changed: the next snapshot writes it again
        value_property.fset(self, new_value)

    def getstate(self: Any) -> dict[str, Any]:
        active = _store
        if active is None or not getattr(active.persisting, "on", False):
            return original_get(self)
        blob_id = self.__dict__.get("_blob")
        if blob_id is None:
            try:
                body = self.value
            except ValueError:  # a disposed (deleted) key: its buffer is closed
                body = b""
            blob_id = active.write(body)
            self.__dict__["_blob"] = blob_id
        active.referenced.add(blob_id)
        state = {k: v for k, v in self.__dict__.items() if k not in ("_value_buffer", "lock")}
        state["_blob"] = blob_id
        return state

    def setstate(self: Any, state: dict[str, Any]) -> None:
        if "value" in state or _store is None:
            original_set(self, state)
            return
        self.__dict__.update(state)
        self._value_buffer = _BlobBuffer(_store.path(state["_blob"]), self._max_buffer_size)
        self.lock = threading.Lock()

    FakeKey.value = property(value_property.fget, set_value)
    FakeKey.__getstate__ = getstate
    FakeKey.__setstate__ = setstate
    FakeKey._mlops_durable = True


# --- backends ---------------------------------------------------------------------------


def _backend_dicts() -> dict[str, Any]:
    """The BackendDicts in use, by service name."""
    from moto.core.base_backend import BackendDict

    return {backend.service_name: backend for backend in list(BackendDict._instances)}


def _backend_dict_for(service: str) -> Any:
    from moto.backends import get_backend

    return get_backend(service)  # type: ignore[arg-type]


class _Pickler(pickle.Pickler):
    """pickle, plus the key objects of ``cryptography`` (KMS keys hold them)."""

    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, threading.Condition):
            return threading.Condition, ()  # SQS queues hold one; a restored queue gets a new one
        from moto.s3.utils import _VersionedKeyStore

        if isinstance(obj, _VersionedKeyStore):
            # Its items() yields only the latest version of each key; keep them all.
            return _rebuild_versioned_store, (type(obj), list(dict.items(obj)))
        from moto.iam.models import IAMBackend

        if isinstance(obj, IAMBackend):
            return _reduce_iam(obj)
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.types import (
            PrivateKeyTypes,
            PublicKeyTypes,
        )

        if isinstance(obj, PrivateKeyTypes):
            der = obj.private_bytes(
                serialization.Encoding.DER,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
            return _load_private_key, (der,)
        if isinstance(obj, PublicKeyTypes):
            der = obj.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return _load_public_key, (der,)
        return NotImplemented


def _reduce_iam(backend: Any) -> tuple[Any, ...]:
    """IAM without the ~1,300 AWS managed policies moto loads into every backend (24 MB
    of pickle, 0.7 s per write); only those attached somewhere carry state worth keeping."""
    kept = [p for p in backend.aws_managed_policies if p.attachment_count]
    dropped = {p.arn for p in backend.aws_managed_policies} - {p.arn for p in kept}
    state = dict(backend.__dict__)
    state["aws_managed_policies"] = kept
    state["managed_policies"] = {
        arn: p for arn, p in backend.managed_policies.items() if arn not in dropped
    }
    return _rebuild_iam, (type(backend), state)


def _rebuild_iam(cls: type, state: dict[str, Any]) -> Any:
    backend = cls.__new__(cls)
    backend.__dict__.update(state)
    kept = {p.arn: p for p in state["aws_managed_policies"]}
    fresh = [kept.get(p.arn, p) for p in backend._init_aws_policies()]
    backend.aws_managed_policies = fresh
    for policy in fresh:
        backend.managed_policies.setdefault(policy.arn, policy)
    return backend


def _rebuild_versioned_store(cls: type, items: list[tuple[str, list[Any]]]) -> Any:
    store = cls()
    for key, versions in items:
        dict.__setitem__(store, key, versions)
    return store


def _load_private_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_private_key(der, None)


def _load_public_key(der: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    return serialization.load_der_public_key(der)


def _dumps(payload: Any) -> bytes:
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(payload)
    return buffer.getvalue()


# --- snapshot files ---------------------------------------------------------------------

# MAGIC, then HMAC-SHA256 (32 bytes) over the rest: the length of the metadata (8 bytes),
# the metadata (JSON: when it was written, and for S3 the blob ids it refers to), the pickle.
_MAGIC = b"mlops-emulator-snapshot/1\n"
_MAC_BYTES = 32
_PREVIOUS = ".previous"
KEY_NAME = "snapshot.key"


class SnapshotRejected(Exception):
    """A snapshot that must not be unpickled; the message says why, as a clause."""


def snapshot_key(root: Path) -> bytes:
    """The state folder's snapshot key, made (random, 0600) on first use."""
    path = root / KEY_NAME
    try:
        _check_private(path, f"the snapshot key {path}")
        return bytes.fromhex(path.read_text().strip())
    except FileNotFoundError:
        key = secrets.token_bytes(32)
        write_atomically(path, key.hex().encode())
        return key


def _check_private(path: Path, what: str) -> None:
    """Raise SnapshotRejected unless ``path`` is this user's and only this user writes it."""
    status = path.lstat()
    if status.st_uid != os.geteuid():
        raise SnapshotRejected(f"{what} is owned by another user (uid {status.st_uid})")
    if status.st_mode & 0o022 or not path.is_file() or path.is_symlink():
        raise SnapshotRejected(f"{what} is writable by other users or not a plain file")


def seal(key: bytes, payload: bytes, meta: dict[str, Any]) -> bytes:
    """A snapshot file's bytes: ``payload`` (a pickle) with its metadata, authenticated."""
    meta_bytes = json.dumps(meta).encode()
    body = len(meta_bytes).to_bytes(8, "big") + meta_bytes + payload
    return _MAGIC + hmac.new(key, body, hashlib.sha256).digest() + body


def open_sealed(path: Path, key: bytes) -> tuple[dict[str, Any], bytes]:
    """The metadata and pickle of a snapshot this state folder wrote, or SnapshotRejected.
    Nothing is unpickled here."""
    _check_private(path, "it")
    data = path.read_bytes()
    header = len(_MAGIC) + _MAC_BYTES + 8
    if not data.startswith(_MAGIC):
        if _MAGIC.startswith(data):
            raise SnapshotRejected("truncated")
        raise SnapshotRejected("not a snapshot signed by this checkout")
    if len(data) < header:
        raise SnapshotRejected("truncated")
    mac, body = data[len(_MAGIC) : len(_MAGIC) + _MAC_BYTES], data[len(_MAGIC) + _MAC_BYTES :]
    if not hmac.compare_digest(mac, hmac.new(key, body, hashlib.sha256).digest()):
        raise SnapshotRejected(
            "truncated or altered, or not written by this checkout (its signature does not match)"
        )
    size = int.from_bytes(body[:8], "big")
    return json.loads(body[8 : 8 + size]), body[8 + size :]


def _peek_blobs(path: Path, key: bytes) -> set[str]:
    """The blob ids a snapshot refers to; none when it cannot be trusted."""
    try:
        meta, _ = open_sealed(path, key)
    except (OSError, SnapshotRejected, ValueError):
        return set()
    return set(meta.get("blobs", ()))


def previous_of(path: Path) -> Path:
    return path.with_name(path.name + _PREVIOUS)


@dataclass(frozen=True)
class RestoreReport:
    services: tuple[str, ...]
    seconds: float
    blobs_removed: int
    # One sentence per snapshot that could not be loaded: what was kept, what was lost.
    notes: tuple[str, ...] = ()


class DurableState:
    """Snapshots and restores moto's backends in one state directory."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.snapshots = root / "snapshots"
        self.blobs = BlobStore(root / "blobs")
        self.snapshots.mkdir(parents=True, exist_ok=True)
        self.blobs.root.mkdir(parents=True, exist_ok=True)
        self.key = snapshot_key(root)
        # The blobs the S3 snapshot on disk refers to: kept while it is the previous one.
        self._s3_refs: set[str] = set()
        self.lock = ReadWriteLock()
        self._cond = threading.Condition()
        self._dirty: set[str] = set()
        self._everything_dirty = False
        self._requested = 0
        self._committed = 0
        self._error: BaseException | None = None
        self._closed = False
        self._thread: threading.Thread | None = None
        _patch_fake_key(self.blobs)

    # --- restore --------------------------------------------------------------------

    def restore(self) -> RestoreReport:
        """Load every service snapshot into moto's (empty) backends.

        A snapshot that cannot be trusted or loaded is set aside (renamed
        ``.damaged-<time>``) and its previous generation is loaded instead; with no good
        previous one the service starts empty. Each case gets a note for the user."""
        started = time.monotonic()
        for leftover in [*self.snapshots.glob(".*.tmp"), *self.blobs.root.glob(".*.tmp")]:
            leftover.unlink(missing_ok=True)  # a write that never got renamed into place
        restored: list[str] = []
        notes: list[str] = []
        for path in sorted(self.snapshots.glob("*.pickle")):
            service = path.stem
            try:
                payload, meta = self._load(path)
            except SnapshotRejected as damage:
                payload, meta, note = self._recover(path, str(damage))
                notes.append(note)
                if payload is None:
                    continue
            backend_dict = _backend_dict_for(service)
            for account_id, regions in payload.items():
                account = backend_dict[account_id]
                for region, backend in regions.items():
                    dict.__setitem__(account, region, backend)
            if service == "s3":
                self._s3_refs = set(meta.get("blobs", ()))
            restored.append(service)
        removed = 0
        if "s3" in restored:
            # Blobs written by a snapshot that never got renamed into place are garbage;
            # those of the previous generation stay, so that it can still be restored.
            previous = _peek_blobs(previous_of(self.snapshots / "s3.pickle"), self.key)
            removed = self.blobs.sweep(self._referenced_blobs() | previous)
        return RestoreReport(tuple(restored), time.monotonic() - started, removed, tuple(notes))

    def _load(self, path: Path) -> tuple[Any, dict[str, Any]]:
        meta, data = open_sealed(path, self.key)
        try:
            # Authenticated above: this state folder's key signed exactly these bytes.
            return pickle.loads(data), meta  # noqa: S301
        except Exception as error:  # a moto upgrade can make an old snapshot unloadable
            raise SnapshotRejected(f"unloadable ({type(error).__name__}: {error})") from error

    def _recover(self, path: Path, damage: str) -> tuple[Any, dict[str, Any], str]:
        """Set the damaged snapshot aside and load the previous generation, if good."""
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        aside = path.with_name(f"{path.name}.damaged-{stamp}")
        os.replace(path, aside)
        what = (
            f"The emulator's {path.stem} snapshot {path} was {damage}; it was kept as {aside.name}"
        )
        previous = previous_of(path)
        try:
            payload, meta = self._load(previous)
        except FileNotFoundError:
            reason = "there is no previous snapshot"
        except SnapshotRejected as also:
            reason = f"the previous one, {previous.name}, was {also} too"
        else:
            os.replace(previous, path)  # the previous generation is the current one again
            written = dt.datetime.fromtimestamp(meta.get("written_at", 0), dt.UTC)
            return (
                payload,
                meta,
                f"{what} and the previous snapshot, written {written:%Y-%m-%d %H:%M:%S} UTC, "
                f"was restored: writes to {path.stem} acknowledged after then are lost.",
            )
        return (
            None,
            {},
            f"{what}, and {reason}: {path.stem} starts empty (everything it held is lost; "
            "`invoke infra-up` re-creates the stack's resources).",
        )

    def _referenced_blobs(self) -> set[str]:
        keep: set[str] = set()
        backend_dict = _backend_dicts().get("s3")
        if backend_dict is None:
            return keep
        for _, _, backend in backend_dict.iter_backends():
            for bucket in list(backend.buckets.values()):
                for _, versions in bucket.keys.iterlists():
                    keep.update(k.__dict__["_blob"] for k in versions if k.__dict__.get("_blob"))
        return keep

    # --- snapshots ------------------------------------------------------------------

    def snapshot(self, services: Iterable[str] | None = None) -> None:
        """Write the given services (default: all in use), under the exclusive lock."""
        with self.lock.exclusive():
            self._snapshot_locked(services)

    def _snapshot_locked(self, services: Iterable[str] | None) -> None:
        in_use = _backend_dicts()
        wanted = in_use.keys() if services is None else [s for s in services if s in in_use]
        for service in sorted(wanted):
            backend_dict = in_use[service]
            payload = {
                account_id: dict(account.items()) for account_id, account in backend_dict.items()
            }
            if service == "s3":
                self.blobs.referenced = set()
                self.blobs.persisting.on = True
            try:
                data = _dumps(payload)
            finally:
                self.blobs.persisting.on = False
            meta: dict[str, Any] = {"service": service, "written_at": time.time()}
            if service == "s3":
                meta["blobs"] = sorted(self.blobs.referenced)
            self._write_generation(self.snapshots / f"{service}.pickle", seal(self.key, data, meta))
            if service == "s3":
                self.blobs.sweep(self.blobs.referenced | self._s3_refs)
                self._s3_refs = set(self.blobs.referenced)

    @staticmethod
    def _write_generation(path: Path, sealed: bytes) -> None:
        """Replace ``path`` atomically, keeping what it held as ``<path>.previous``. The
        current file always exists: the previous one is a hard link made first."""
        if path.exists():
            link = path.with_name(f".{path.name}.link.tmp")
            link.unlink(missing_ok=True)
            os.link(path, link)
            os.replace(link, previous_of(path))
        write_atomically(path, sealed)

    # --- group commit ---------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._commit_loop, name="snapshots", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write what is pending and stop the commit thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=60)

    def wrote(self, service: str | None, also: tuple[str, ...] = ()) -> None:
        """Called after a mutating request; returns once it is on disk (with ``also``:
        services the request may have delivered into)."""
        with self._cond:
            if service is None:
                self._everything_dirty = True
            else:
                self._dirty.add(service)
                self._dirty.update(also)
            self._requested += 1
            ticket = self._requested
            self._cond.notify_all()
            while self._committed < ticket:
                if self._error is not None:
                    raise RuntimeError(f"could not persist the emulator state: {self._error}")
                self._cond.wait()

    def _commit_loop(self) -> None:
        while True:
            with self._cond:
                while self._committed == self._requested and not self._closed:
                    self._cond.wait()
                if self._committed == self._requested and self._closed:
                    return
                target = self._requested
                services = None if self._everything_dirty else set(self._dirty)
                self._dirty.clear()
                self._everything_dirty = False
            try:
                self.snapshot(services)
                error = None
            except Exception as failure:  # reported to every waiting writer
                error = failure
            with self._cond:
                self._error = error
                self._committed = target
                self._cond.notify_all()


# --- WSGI -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RequestKind:
    mutating: bool
    service: str | None


def classify(environ: dict[str, Any]) -> RequestKind:
    """Whether a request can change state, and which service it is for.

    The service comes from the SigV4 credential scope; the action from X-Amz-Target
    (JSON protocols) or the form's ``Action`` (query protocols: IAM, STS). The form
    body is read and put back, so moto still sees it.
    """
    service = _signed_service(environ.get("HTTP_AUTHORIZATION", ""))
    method = environ.get("REQUEST_METHOD", "GET").upper()
    if method in _READ_METHODS:
        return RequestKind(False, service)
    if method != "POST" or service == "s3":
        return RequestKind(True, service)
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    action = target.rsplit(".", 1)[-1] if target else _form_action(environ)
    if action is None:
        return RequestKind(True, service)
    return RequestKind(not action.startswith(_READ_PREFIXES), service)


def _signed_service(authorization: str) -> str | None:
    marker = "Credential="
    start = authorization.find(marker)
    if start < 0:
        return None
    scope = authorization[start + len(marker) :].split(",", 1)[0].split("/")
    return scope[3] if len(scope) >= 5 else None


def _form_action(environ: dict[str, Any]) -> str | None:
    query = parse_qs(environ.get("QUERY_STRING", ""))
    if "Action" in query:
        return query["Action"][0]
    if not environ.get("CONTENT_TYPE", "").startswith(_FORM):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length > _MAX_FORM_BYTES:
        return None
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    values = parse_qs(body.decode("utf-8", "replace"))
    return values.get("Action", [None])[0]


# moto's BackendDict service names differ from SigV4 signing names for a few services.
_SIGNING_TO_BACKEND = {"monitoring": "cloudwatch", "states": "stepfunctions"}
# A write to these services can deliver into others (EventBridge and S3 notifications
# put messages on SQS queues and SNS topics): those are written with it.
_DELIVERS_INTO = {"events": ("sqs", "sns"), "s3": ("events", "sqs", "sns")}


class DurableMiddleware:
    """Serve each request under the shared lock; hold a write's response until it is durable."""

    def __init__(self, app: Callable[..., Any], state: DurableState) -> None:
        self.app = app
        self.state = state

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        kind = classify(environ)
        with self.state.lock.shared():
            result = self.app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        if kind.mutating:
            service = _SIGNING_TO_BACKEND.get(kind.service or "", kind.service)
            self.state.wrote(service, also=_DELIVERS_INTO.get(service or "", ()))
        return [body]
