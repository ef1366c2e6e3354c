"""Ship the model servers' closed capture spool files to S3, as SageMaker's capture does.

The endpoint's front process calls :meth:`CaptureUploader.ship` every second and once more
when it stops; a file is deleted only after S3 has it, so an upload that fails (the
emulator restarting) is retried on the next call and no record is lost.
"""

from __future__ import annotations

import logging
from pathlib import Path

from botocore.client import BaseClient
from botocore.exceptions import BotoCoreError, ClientError

from pipelines.core.s3io import parse_s3_uri
from pipelines.serving.capture import CaptureSettings, closed_spool_files, spool_key

log = logging.getLogger("capture")


class CaptureUploader:
    def __init__(self, settings: CaptureSettings, spool: Path, s3: BaseClient) -> None:
        self.settings = settings
        self.spool = spool
        self.s3 = s3
        self.bucket = parse_s3_uri(settings.destination)[0]
        self.errors = 0

    def ship(self) -> int:
        """Upload every closed spool file; how many were shipped."""
        shipped = 0
        for path in closed_spool_files(self.spool):
            key = spool_key(self.settings, path.name)
            try:
                self.s3.put_object(Bucket=self.bucket, Key=key, Body=path.read_bytes())
            except (ClientError, BotoCoreError) as error:
                self.errors += 1
                log.warning("capture upload of %s failed (kept for the next try): %s", key, error)
                break
            path.unlink()
            shipped += 1
        return shipped
