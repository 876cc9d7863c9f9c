"""Targets in S3 and S3-compatible stores (Ceph radosgw, MinIO), over boto3.

Settings come from the ``[s3]`` config section (see docs/s3.md). Writes stream as a multipart
upload that is completed on a clean close only, so a failed task never leaves an object.
Differs from luigi: reading iterates lines with every format, and a missing key raises.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import threading
from collections.abc import Iterable, Iterator
from typing import IO, TYPE_CHECKING, Any

from pipes.config import get_config
from pipes.exceptions import (
    ConfigError,
    FileAlreadyExists,
    MissingExtra,
    TargetError,
    TargetNotFound,
    TargetPermissionDenied,
    TargetUnavailable,
)
from pipes.target import AtomicSink, FileSystem, FileSystemTarget, open_formatted

from .s3_upload import StreamingUpload, UploadPlan

try:
    import boto3
    import botocore.exceptions as bce
    from boto3.s3.transfer import TransferConfig
    from botocore.config import Config as BotoConfig
except ImportError as err:  # pragma: no cover - exercised only without the extra
    raise MissingExtra(f"pipes.contrib.s3 needs boto3 ({err}): pip install pipes[s3]") from err

if TYPE_CHECKING:
    from pipes.format import Format

SCHEMES = ("s3://", "s3a://", "s3n://")
DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_THRESHOLD = 8 * 1024 * 1024
# Fewer paths than this under one prefix are HEADed one by one: listing a prefix of a million
# keys to answer two paths would cost more than it saves.
LIST_THRESHOLD = 8

_OPTIONS = {
    "aws_access_key_id",
    "aws_secret_access_key",
    "aws_session_token",
    "aws_role_arn",
    "aws_role_session_name",
    "endpoint_url",
    "region_name",
    "part_size",
    "multipart_threshold",
    "max_concurrency",
    "connect_timeout",
    "read_timeout",
    "max_attempts",
    "addressing_style",
}
_NOT_FOUND = {"404", "NoSuchKey", "NoSuchBucket", "NotFound"}
_DENIED = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "Forbidden"}
_CAUSES = {
    "NoSuchBucket": "the bucket does not exist",
    "NoSuchKey": "no such key",
    "404": "not found",
    "NotFound": "not found",
    "InvalidAccessKeyId": "the access key is unknown: check [s3] aws_access_key_id",
    "SignatureDoesNotMatch": "the secret key is wrong: check [s3] aws_secret_access_key",
    "AccessDenied": "access denied: check the credentials' permissions",
    "403": "access denied: check [s3] credentials and permissions",
}


def split_path(path: str) -> tuple[str, str]:
    """(bucket, key) of ``s3://bucket/key`` (also s3a://, s3n://); TargetError otherwise."""
    for scheme in SCHEMES:
        if path.startswith(scheme):
            bucket, _, key = path[len(scheme) :].partition("/")
            if bucket:
                return bucket, key
    raise TargetError(f"bad S3 path {path!r}: expected s3://bucket/key")


def _join(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


def _cause(err: Exception) -> tuple[type[TargetError], str]:
    """The pipes error class and a short cause for a botocore error."""
    if isinstance(err, bce.ClientError):
        info = err.response.get("Error", {})
        code = str(info.get("Code", "?"))
        status = str(err.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        cause = _CAUSES.get(code) or _CAUSES.get(status) or info.get("Message") or code
        if code in _NOT_FOUND or status == "404":
            return TargetNotFound, f"{cause} ({code})"
        if code in _DENIED or status == "403":
            return TargetPermissionDenied, f"{cause} ({code})"
        return TargetError, f"{cause} ({code})"
    if isinstance(err, bce.NoCredentialsError):
        return TargetPermissionDenied, "no credentials: set [s3] aws_access_key_id or AWS_* vars"
    if isinstance(err, (bce.ReadTimeoutError, bce.ConnectTimeoutError)):
        return TargetUnavailable, f"the S3 call timed out ({err})"
    if isinstance(err, (bce.EndpointConnectionError, bce.ConnectionError, bce.HTTPClientError)):
        return TargetUnavailable, f"cannot reach the S3 endpoint ({err})"
    return TargetError, str(err).splitlines()[0] if str(err) else type(err).__name__


@contextlib.contextmanager
def s3_errors(action: str, path: str) -> Iterator[None]:
    """Turn botocore errors in the block into one-line TargetErrors naming ``path``."""
    try:
        yield
    except TargetError:
        raise
    except (bce.BotoCoreError, bce.ClientError) as err:
        cls, cause = _cause(err)
        raise cls(f"cannot {action} {path}: {cause}") from err


class S3Client(FileSystem):
    """boto3 behind the FileSystem interface; settings from ``[s3]``, overridden by arguments.

    Clients with equal settings compare equal, so targets sharing a store are checked together.
    The boto3 client is made on first use, once per process (workers fork).
    """

    def __init__(
        self,
        aws_access_key_id: str | None = None,
        aws_secret_access_key: str | None = None,
        aws_session_token: str | None = None,
        **kwargs: Any,  # luigi's signature; unknown names are a ConfigError, never ignored
    ) -> None:
        unknown = sorted(set(kwargs) - _OPTIONS)
        if unknown:
            raise ConfigError(f"unknown S3Client option {unknown[0]!r}: known are [s3] keys")
        options = {k: v for k, v in get_config().section("s3").items() if k in _OPTIONS}
        given = {
            "aws_access_key_id": aws_access_key_id,
            "aws_secret_access_key": aws_secret_access_key,
            "aws_session_token": aws_session_token,
            **kwargs,
        }
        options.update({k: str(v) for k, v in given.items() if v is not None})
        self.options: dict[str, str] = options
        self._local = threading.local()
        self._pid = 0

    # -- settings -------------------------------------------------------------------------

    def _int(self, name: str, default: int) -> int:
        try:
            return int(self.options.get(name, default))
        except ValueError:
            raise ConfigError(f"[s3] {name} must be an integer: {self.options[name]!r}") from None

    def _float(self, name: str, default: float) -> float:
        try:
            return float(self.options.get(name, default))
        except ValueError:
            raise ConfigError(f"[s3] {name} must be a number: {self.options[name]!r}") from None

    @property
    def transfer_config(self) -> TransferConfig:
        """Managed-transfer settings: multipart above ``multipart_threshold``, in ``part_size``."""
        return TransferConfig(
            multipart_threshold=self._int("multipart_threshold", DEFAULT_THRESHOLD),
            multipart_chunksize=self._int("part_size", DEFAULT_PART_SIZE),
            max_concurrency=self._int("max_concurrency", 10),
        )

    def upload_plan(self, bucket: str, key: str) -> UploadPlan:
        """How a streaming write to ``bucket/key`` is sent: parts, threshold, parallelism."""
        return UploadPlan(
            s3=self.s3,
            bucket=bucket,
            key=key,
            part_size=self._int("part_size", DEFAULT_PART_SIZE),
            threshold=self._int("multipart_threshold", DEFAULT_THRESHOLD),
            concurrency=self._int("max_concurrency", 10),
            errors=s3_errors,
        )

    @property
    def s3(self) -> Any:
        """The boto3 client for this thread and process (boto3 clients are not fork-safe)."""
        if self._pid != os.getpid():
            self._local = threading.local()
            self._pid = os.getpid()
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._make_client()
        return client

    def _make_client(self) -> Any:
        opts = self.options
        config = BotoConfig(
            connect_timeout=self._float("connect_timeout", 10.0),
            read_timeout=self._float("read_timeout", 60.0),
            retries={"max_attempts": self._int("max_attempts", 5), "mode": "standard"},
            s3={"addressing_style": opts.get("addressing_style", "path")},
            max_pool_connections=32,
        )
        creds: dict[str, str] = {
            k: opts[k]
            for k in ("aws_access_key_id", "aws_secret_access_key", "aws_session_token")
            if k in opts
        }
        with s3_errors("connect to", opts.get("endpoint_url", "S3")):
            if "aws_role_arn" in opts:
                creds = self._assume_role(creds)
            session = boto3.session.Session(**creds)
            return session.client(
                "s3",
                endpoint_url=opts.get("endpoint_url"),
                region_name=opts.get("region_name", "us-east-1"),
                config=config,
            )

    def _assume_role(self, creds: dict[str, str]) -> dict[str, str]:
        sts = boto3.session.Session(**creds).client("sts")
        role = sts.assume_role(
            RoleArn=self.options["aws_role_arn"],
            RoleSessionName=self.options.get("aws_role_session_name", "pipes"),
        )["Credentials"]
        return {
            "aws_access_key_id": role["AccessKeyId"],
            "aws_secret_access_key": role["SecretAccessKey"],
            "aws_session_token": role["SessionToken"],
        }

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options == self.options

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(self.options.items()))))

    # -- existence ------------------------------------------------------------------------

    def exists(self, path: str) -> bool:
        """Whether an object is at ``path``, or any key lies under it (a directory)."""
        bucket, key = split_path(path)
        if not key:
            with s3_errors("check", path):
                return self._bucket_exists(bucket)
        if not key.endswith("/") and self._head(bucket, key) is not None:
            return True
        return self.isdir(path)

    def _bucket_exists(self, bucket: str) -> bool:
        try:
            self.s3.head_bucket(Bucket=bucket)
        except bce.ClientError as err:
            if _cause(err)[0] is TargetNotFound:
                return False
            raise
        return True

    def _head(self, bucket: str, key: str) -> dict[str, Any] | None:
        with s3_errors("check", _join(bucket, key)):
            try:
                head: dict[str, Any] = self.s3.head_object(Bucket=bucket, Key=key)
                return head
            except bce.ClientError as err:
                code = str(err.response.get("Error", {}).get("Code"))
                if code in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

    def isdir(self, path: str) -> bool:
        """Whether any key starts with ``path/`` (a bucket root is a directory)."""
        bucket, key = split_path(path)
        if not key:
            return self.exists(path)
        prefix = key.rstrip("/") + "/"
        try:
            with s3_errors("list", path):
                reply = self.s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=1)
        except TargetNotFound:  # no bucket: nothing in it exists (a read would say why)
            return False
        count: int = reply.get("KeyCount", 0)
        return count > 0

    def exists_many(self, paths: Iterable[str]) -> dict[str, bool]:
        """exists() for many paths with one paginated, delimited listing per prefix."""
        result: dict[str, bool] = {}
        groups: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for path in paths:
            bucket, key = split_path(path)
            prefix, _, name = key.rpartition("/")
            if not name:
                result[path] = self.exists(path)
            else:
                groups.setdefault((bucket, prefix + "/" if prefix else ""), []).append((path, name))
        for (bucket, prefix), group in groups.items():
            if len(group) < LIST_THRESHOLD:
                result.update((path, self.exists(path)) for path, _ in group)
                continue
            names = self._names_under(bucket, prefix, max(name for _, name in group))
            result.update((path, name in names) for path, name in group)
        return result

    def _names_under(self, bucket: str, prefix: str, last: str) -> set[str]:
        """Names of keys and 'directories' directly under ``prefix``, up to ``last`` in order."""
        try:
            return self._list_names(bucket, prefix, last)
        except TargetNotFound:  # no bucket: nothing in it exists
            return set()

    def _list_names(self, bucket: str, prefix: str, last: str) -> set[str]:
        names: set[str] = set()
        pages = self.s3.get_paginator("list_objects_v2").paginate(
            Bucket=bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": 1000}
        )
        with s3_errors("list", _join(bucket, prefix)):
            for page in pages:
                for item in page.get("Contents", []):
                    names.add(item["Key"][len(prefix) :].removesuffix("_$folder$"))
                for item in page.get("CommonPrefixes", []):
                    names.add(item["Prefix"][len(prefix) :].rstrip("/"))
                # Keys come in order: once past the largest name asked about, stop paging.
                keys = [c["Key"] for c in page.get("Contents", [])]
                keys += [c["Prefix"] for c in page.get("CommonPrefixes", [])]
                if keys and max(keys)[len(prefix) :] > last:
                    break
        return names

    # -- listing --------------------------------------------------------------------------

    def _keys(self, path: str) -> Iterator[dict[str, Any]]:
        bucket, key = split_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        with s3_errors("list", path):
            for page in pages:
                yield from page.get("Contents", [])

    def listdir(self, path: str) -> Iterator[str]:
        """Full paths of every object under ``path``, recursively, in key order."""
        bucket, _ = split_path(path)
        for item in self._keys(path):
            yield _join(bucket, item["Key"])

    def list(self, path: str) -> Iterator[str]:
        """Keys under ``path``, relative to it (luigi's ``list``)."""
        _, key = split_path(path)
        prefix = key.rstrip("/") + "/" if key else ""
        for item in self._keys(path):
            yield item["Key"][len(prefix) :]

    # -- changes --------------------------------------------------------------------------

    def mkdir(self, path: str, parents: bool = True, raise_if_exists: bool = False) -> None:
        """Create a directory marker ``key/``; S3 needs no parents."""
        if raise_if_exists and self.isdir(path):
            raise FileAlreadyExists(f"cannot create directory {path}: it already exists")
        bucket, key = split_path(path)
        if key:
            with s3_errors("create directory", path):
                self.s3.put_object(Bucket=bucket, Key=key.rstrip("/") + "/", Body=b"")

    def remove(self, path: str, recursive: bool = True, skip_trash: bool = True) -> None:
        """Delete the object, or every key under the directory when ``recursive``."""
        bucket, key = split_path(path)
        if not key:
            raise TargetError(f"cannot remove {path}: refusing to empty a whole bucket")
        if not key.endswith("/") and self._head(bucket, key) is not None:
            with s3_errors("remove", path):
                self.s3.delete_object(Bucket=bucket, Key=key)
            return
        keys = [item["Key"] for item in self._keys(path)]
        if not keys:
            raise TargetNotFound(f"cannot remove {path}: no such key or directory")
        if not recursive:
            raise TargetError(f"cannot remove {path}: a directory (pass recursive=True)")
        with s3_errors("remove", path):
            for start in range(0, len(keys), 1000):
                batch = [{"Key": k} for k in keys[start : start + 1000]]
                self.s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True})

    def copy(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Managed copy (multipart above the threshold) of an object, or of a directory's keys."""
        if raise_if_exists and self.exists(dst):
            raise FileAlreadyExists(f"cannot copy {src} to {dst}: destination exists")
        src_bucket, src_key = split_path(src)
        dst_bucket, dst_key = split_path(dst)
        if src_key and not src_key.endswith("/") and self._head(src_bucket, src_key):
            pairs = [(src_key, dst_key)]
        else:
            base = src_key.rstrip("/") + "/" if src_key else ""
            dbase = dst_key.rstrip("/") + "/" if dst_key else ""
            pairs = [(k["Key"], dbase + k["Key"][len(base) :]) for k in self._keys(src)]
            if not pairs:
                raise TargetNotFound(f"cannot copy {src}: no such key or directory")
        with s3_errors(f"copy {src} to", dst):
            for skey, dkey in pairs:
                self.s3.copy(
                    {"Bucket": src_bucket, "Key": skey},
                    dst_bucket,
                    dkey,
                    Config=self.transfer_config,
                )

    def move(self, src: str, dst: str, raise_if_exists: bool = False) -> None:
        """Copy then delete: S3 has no rename, so a move is never atomic."""
        self.copy(src, dst, raise_if_exists=raise_if_exists)
        self.remove(src)

    def put(self, local_path: str, destination_s3_path: str, **kwargs: Any) -> None:
        """Upload a local file (managed: multipart above the threshold); kwargs are ExtraArgs."""
        bucket, key = split_path(destination_s3_path)
        with s3_errors("upload to", destination_s3_path):
            self.s3.upload_file(
                local_path, bucket, key, ExtraArgs=kwargs or None, Config=self.transfer_config
            )

    def put_string(self, content: str | bytes, destination_s3_path: str, **kwargs: Any) -> None:
        """Write ``content`` (text is UTF-8) as one object."""
        bucket, key = split_path(destination_s3_path)
        body = content.encode("utf-8") if isinstance(content, str) else content
        with s3_errors("write", destination_s3_path):
            self.s3.put_object(Bucket=bucket, Key=key, Body=body, **kwargs)

    def put_multipart(
        self,
        local_path: str,
        destination_s3_path: str,
        part_size: int = DEFAULT_PART_SIZE,
        **kwargs: Any,
    ) -> None:
        """Upload a local file in parts of ``part_size`` bytes (luigi's name)."""
        bucket, key = split_path(destination_s3_path)
        config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size)
        with s3_errors("upload to", destination_s3_path):
            self.s3.upload_file(local_path, bucket, key, ExtraArgs=kwargs or None, Config=config)

    def get(self, s3_path: str, destination_local_path: str) -> None:
        """Download to a local file, atomically (a temporary name, then a rename)."""
        bucket, key = split_path(s3_path)
        parent = os.path.dirname(os.path.abspath(destination_local_path))
        fd, temp = tempfile.mkstemp(dir=parent, prefix=".pipes-s3-")
        os.close(fd)
        try:
            with s3_errors("download", s3_path):
                self.s3.download_file(bucket, key, temp, Config=self.transfer_config)
            os.replace(temp, destination_local_path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.remove(temp)

    def get_as_bytes(self, s3_path: str) -> bytes:
        """The object's content."""
        with self.open_read(s3_path) as stream:
            return stream.read()

    def get_as_string(self, s3_path: str, encoding: str = "utf-8") -> str:
        """The object's content decoded with ``encoding``."""
        return self.get_as_bytes(s3_path).decode(encoding)

    def open_read(self, s3_path: str) -> IO[bytes]:
        """A buffered stream over the object's body; TargetNotFound if there is none."""
        bucket, key = split_path(s3_path)
        with s3_errors("read", s3_path):
            body = self.s3.get_object(Bucket=bucket, Key=key)["Body"]
        return io.BufferedReader(_BodyReader(body, s3_path), buffer_size=1024 * 1024)


class _BodyReader(io.RawIOBase):
    """A raw stream over botocore's StreamingBody, so io's buffering and text layers work."""

    def __init__(self, body: Any, path: str) -> None:
        self._body = body
        self._path = path

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        with s3_errors("read", self._path):
            data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._body.close()
        super().close()


class _S3Sink(AtomicSink):
    """A streaming multipart upload of the final key; nothing is visible before publish."""

    def __init__(self, client: S3Client, path: str) -> None:
        self.client = client
        self.path = path
        self._upload: StreamingUpload | None = None

    def open(self) -> IO[bytes]:
        bucket, key = split_path(self.path)
        self._upload = StreamingUpload(self.client.upload_plan(bucket, key))
        return self._upload  # type: ignore[return-value]

    def publish(self) -> None:
        assert self._upload is not None
        self._upload.commit()

    def discard(self) -> None:
        if self._upload is not None:
            self._upload.abort()


_DEFAULT_CLIENTS: dict[S3Client, S3Client] = {}


def get_default_client() -> S3Client:
    """The client made from ``[s3]``, one per distinct settings (boto3 clients are costly)."""
    client = S3Client()
    return _DEFAULT_CLIENTS.setdefault(client, client)


class S3Target(FileSystemTarget):
    """An object in S3. Writes upload on a clean close only (multipart above the threshold)."""

    def __init__(
        self, path: str, format: Format | None = None, client: S3Client | None = None
    ) -> None:
        split_path(path)
        super().__init__(path)
        self.format = format
        self._client = client

    @property
    def fs(self) -> S3Client:
        if self._client is None:
            self._client = get_default_client()
        return self._client

    def open(self, mode: str = "r") -> IO[Any]:
        """Stream the object, or write it atomically (a multipart upload completed on close)."""
        return open_formatted(
            mode,
            self.format,
            lambda: self.fs.open_read(self.path),
            lambda: _S3Sink(self.fs, self.path),
        )


class S3FlagTarget(S3Target):
    """A directory of objects, complete when ``path + flag`` exists; ``path`` must end with /."""

    def __init__(
        self,
        path: str,
        format: Format | None = None,
        client: S3Client | None = None,
        flag: str = "_SUCCESS",
    ) -> None:
        if not path.endswith("/"):
            raise TargetError(f"S3FlagTarget path must end with '/': {path!r}")
        super().__init__(path, format, client)
        self.flag = flag

    def exists(self) -> bool:
        return self.fs.exists(self.path + self.flag)


class S3EmrTarget(S3FlagTarget):
    """luigi's name for a flag target written by an EMR job (flag ``_SUCCESS``)."""
