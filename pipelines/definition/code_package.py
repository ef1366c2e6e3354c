"""Package training/ into deterministic, content-addressed artifacts.

The same bytes always give the same SHA-256, which names the S3 prefix the code is
uploaded to. The pipeline definition refers to those keys only, so two builds from
the same code are byte-identical, and a code change shows up as a new key (and a
step-cache miss) without any timestamp in the definition. An existing key is trusted
only when its bytes hash to the digest it names (:func:`upload_code`).

A registered model package records the identity of the tarballs it serves, its model
and this code bundle (:data:`ARTIFACTS`, in its CustomerMetadataProperties), and a deploy
checks what it downloads against them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import logging
import tarfile
from dataclasses import dataclass
from pathlib import Path

from botocore.client import BaseClient
from botocore.exceptions import ClientError

from pipelines.core.errors import MlopsError

log = logging.getLogger(__name__)

SOURCEDIR = "sourcedir.tar.gz"
# What a container needs: the scripts and, if present, their extra requirements.
_INCLUDED = ("*.py", "requirements.txt")


@dataclass(frozen=True)
class ArtifactKeys:
    """The CustomerMetadataProperties keys that record one artifact's identity."""

    sha256: str
    version_id: str  # the S3 VersionId, when the bucket keeps versions


# The model package's "model" (ModelDataUrl) and "code" (SAGEMAKER_SUBMIT_DIRECTORY).
ARTIFACTS = {
    "model": ArtifactKeys("mlops:model-sha256", "mlops:model-s3-version"),
    "code": ArtifactKeys("mlops:code-sha256", "mlops:code-s3-version"),
}


@dataclass(frozen=True)
class CodeBundle:
    """The training code: the files by name and their deterministic tarball."""

    files: tuple[tuple[str, bytes], ...]
    tarball: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.tarball).hexdigest()

    def names(self) -> list[str]:
        return [name for name, _ in self.files]

    def key_prefix(self, pipeline_name: str) -> str:
        return f"{pipeline_name}/code/{self.sha256}"

    def s3_uri(self, bucket: str, pipeline_name: str, name: str = SOURCEDIR) -> str:
        if name != SOURCEDIR and name not in self.names():
            raise MlopsError(
                f"{name} is not part of the training code ({', '.join(self.names())})."
            )
        return f"s3://{bucket}/{self.key_prefix(pipeline_name)}/{name}"

    def objects(self) -> list[tuple[str, bytes]]:
        """(name, bytes) of everything uploaded: each script and the tarball."""
        return [*self.files, (SOURCEDIR, self.tarball)]


def package_code(directory: Path) -> CodeBundle:
    """Read the scripts of ``directory`` into a bundle (no side effects)."""
    if not directory.is_dir():
        raise MlopsError(f"Training code directory {directory} does not exist.")
    paths = sorted(
        {p for pattern in _INCLUDED for p in directory.glob(pattern) if p.is_file()},
        key=lambda p: p.name,
    )
    if not paths:
        raise MlopsError(f"No Python scripts in {directory}.")
    files = tuple((p.name, p.read_bytes()) for p in paths)
    return CodeBundle(files=files, tarball=_deterministic_tarball(files))


def _deterministic_tarball(files: tuple[tuple[str, bytes], ...]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            info.mtime = 0
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    compressed = io.BytesIO()
    with gzip.GzipFile(fileobj=compressed, mode="wb", mtime=0, filename="") as gz:
        gz.write(raw.getvalue())
    return compressed.getvalue()


def upload_code(bundle: CodeBundle, s3: BaseClient, bucket: str, pipeline_name: str) -> int:
    """Upload the bundle unless it is already there; returns how many objects were put.

    An existing key is skipped only when it holds these exact bytes. One that differs was
    changed after it was uploaded (its prefix names the digest of what belongs there), so
    it is overwritten with the right bytes rather than refused: a run then uses the code
    its definition names, and the run after a tampering is not blocked by it. The model
    versions registered from the changed bytes do not verify and are not served."""
    prefix = bundle.key_prefix(pipeline_name)
    uploaded = 0
    for name, data in bundle.objects():
        key = f"{prefix}/{name}"
        try:
            found = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey", "NotFound"):
                raise MlopsError(f"Cannot check s3://{bucket}/{key}: {error}") from error
        else:
            if found == data:
                continue
            log.warning(
                "s3://%s/%s does not hold the code its key names (sha256 %s, expected %s): "
                "it was changed after upload; uploading the right bytes again.",
                bucket,
                key,
                hashlib.sha256(found).hexdigest(),
                hashlib.sha256(data).hexdigest(),
            )
        s3.put_object(Bucket=bucket, Key=key, Body=data)
        uploaded += 1
    return uploaded
