"""A streaming S3 upload that becomes visible only on commit(): multipart while the task writes.

Parts are sent on a few threads as soon as they fill, so writing and uploading overlap and no
local spool file is needed. Small objects go up in one PUT at commit. S3 shows a multipart
object only when it is completed, so an aborted upload leaves nothing behind.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("pipes.contrib.s3")


@dataclass(frozen=True)
class UploadPlan:
    """Where an upload goes and how: the boto3 client, the key, part size and parallelism."""

    s3: Any
    bucket: str
    key: str
    part_size: int
    threshold: int
    concurrency: int
    # s3_errors(action, path): turns botocore errors in a block into one-line TargetErrors.
    errors: Callable[[str, str], contextlib.AbstractContextManager[None]]

    @property
    def path(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


class StreamingUpload(io.RawIOBase):
    """Bytes written here reach S3 as one object when commit() returns, and never before."""

    def __init__(self, plan: UploadPlan) -> None:
        self.plan = plan
        self._buffer = bytearray()
        self._upload_id: str | None = None
        self._pool: cf.ThreadPoolExecutor | None = None
        self._parts: list[cf.Future[dict[str, Any]]] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        self._buffer += data
        start_at = max(self.plan.part_size, self.plan.threshold)
        while len(self._buffer) >= (self.plan.part_size if self._upload_id else start_at):
            self._send_part(bytes(self._buffer[: self.plan.part_size]))
            del self._buffer[: self.plan.part_size]
        return len(data)

    def _send_part(self, body: bytes) -> None:
        plan = self.plan
        if self._upload_id is None:
            with plan.errors("upload to", plan.path):
                reply = plan.s3.create_multipart_upload(Bucket=plan.bucket, Key=plan.key)
            self._upload_id = reply["UploadId"]
            self._pool = cf.ThreadPoolExecutor(plan.concurrency, "pipes-s3-upload")
        assert self._pool is not None
        # At most `concurrency` parts in flight: a slow store slows the writer, not memory.
        pending = [f for f in self._parts if not f.done()]
        if len(pending) >= plan.concurrency:
            cf.wait(pending, return_when=cf.FIRST_COMPLETED)
        for done in (f for f in self._parts if f.done()):
            done.result()  # a failed part fails the write now
        number = len(self._parts) + 1
        self._parts.append(self._pool.submit(self._upload_part, number, body))

    def _upload_part(self, number: int, body: bytes) -> dict[str, Any]:
        plan = self.plan
        with plan.errors("upload to", plan.path):
            reply = plan.s3.upload_part(
                Bucket=plan.bucket,
                Key=plan.key,
                UploadId=self._upload_id,
                PartNumber=number,
                Body=body,
            )
        return {"ETag": reply["ETag"], "PartNumber": number}

    def commit(self) -> None:
        """Send what is left and complete the object; TargetError (after abort()) if it fails."""
        plan = self.plan
        try:
            if self._upload_id is None:
                with plan.errors("write", plan.path):
                    plan.s3.put_object(Bucket=plan.bucket, Key=plan.key, Body=bytes(self._buffer))
                return
            if self._buffer:
                self._send_part(bytes(self._buffer))
                self._buffer.clear()
            parts = [future.result() for future in self._parts]
            with plan.errors("upload to", plan.path):
                plan.s3.complete_multipart_upload(
                    Bucket=plan.bucket,
                    Key=plan.key,
                    UploadId=self._upload_id,
                    MultipartUpload={"Parts": parts},
                )
            self._upload_id = None
        except BaseException:
            self.abort()
            raise
        finally:
            self._shutdown()

    def abort(self) -> None:
        """Drop the upload: S3 then keeps no part of it. Idempotent; a failure is only logged."""
        self._buffer.clear()
        self._shutdown()
        if self._upload_id is None:
            return
        upload_id, self._upload_id = self._upload_id, None
        plan = self.plan
        try:
            with plan.errors("abort the upload to", plan.path):
                plan.s3.abort_multipart_upload(Bucket=plan.bucket, Key=plan.key, UploadId=upload_id)
        except Exception as err:  # the task's own error matters more; the store expires it
            logger.warning("%s", err)

    def _shutdown(self) -> None:
        if self._pool is not None:
            for future in self._parts:
                future.cancel()
            self._pool.shutdown(wait=True)
            self._pool = None
