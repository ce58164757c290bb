"""S3 implementations of the ingestion source and processed store ports."""

from __future__ import annotations

import hashlib
import io
from datetime import datetime
from typing import BinaryIO

from botocore.exceptions import ClientError

from runtime.adapters.aws import error_code, translated
from runtime.errors import OutputConflictError

_MISSING = frozenset({"NoSuchKey", "404", "NotFound"})


class S3Bucket:
    """One bucket; read, list (all pages), conditional put, delete."""

    def __init__(self, client, bucket: str) -> None:
        self._s3 = client
        self.bucket = bucket
        self._modified: dict[str, datetime] = {}  # LastModified from the latest listing


    def list_keys(self, prefix: str) -> list[str]:
        modified: dict[str, datetime] = {}
        with translated("S3", f"list s3://{self.bucket}/{prefix}"):
            for page in self._s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=prefix
            ):
                modified.update((obj["Key"], obj["LastModified"]) for obj in page.get("Contents", ()))
        self._modified = modified  # only the latest listing's: memory stays bounded
        return sorted(modified)

    def list_after(self, prefix: str, start_after: str, max_keys: int) -> list[str]:
        with translated("S3", f"list s3://{self.bucket}/{prefix}"):
            page = self._s3.list_objects_v2(
                Bucket=self.bucket, Prefix=prefix, StartAfter=start_after, MaxKeys=max_keys
            )
        return [obj["Key"] for obj in page.get("Contents", ())]

    def last_modified(self, key: str) -> datetime:
        """From the listing that found the key (no extra request), else a HEAD."""
        if key not in self._modified:
            with translated("S3", f"head s3://{self.bucket}/{key}"):
                return self._s3.head_object(Bucket=self.bucket, Key=key)["LastModified"]
        return self._modified[key]

    def read(self, key: str) -> bytes | None:
        with translated("S3", f"get s3://{self.bucket}/{key}"):
            try:
                return self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
            except ClientError as exc:
                if error_code(exc) in _MISSING:
                    return None
                raise

    def open(self, key: str) -> BinaryIO:
        with translated("S3", f"get s3://{self.bucket}/{key}"):
            body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"]
        return _Stream(body, f"read s3://{self.bucket}/{key}")

    def put_if_absent(self, key: str, body: bytes, metadata: dict[str, str]) -> bool:
        sha = metadata.get("sha256") or hashlib.sha256(body).hexdigest()
        with translated("S3", f"put s3://{self.bucket}/{key}"):
            try:
                self._s3.put_object(
                    Bucket=self.bucket,
                    Key=key,
                    Body=body,
                    IfNoneMatch="*",
                    Metadata={**metadata, "sha256": sha},
                    ContentType=_content_type(key),
                )
                return True
            except ClientError as exc:
                if error_code(exc) != "PreconditionFailed":
                    raise
            existing = self._existing_sha256(key)
        if existing != sha:
            raise OutputConflictError(key, existing, sha)
        return False

    def _existing_sha256(self, key: str) -> str | None:
        head = self._s3.head_object(Bucket=self.bucket, Key=key)
        recorded = head.get("Metadata", {}).get("sha256")
        if recorded:
            return recorded
        # Written by something else than this processor: hash what is there.
        body = self._s3.get_object(Bucket=self.bucket, Key=key)["Body"].read()
        return hashlib.sha256(body).hexdigest()

    def delete(self, key: str) -> None:
        with translated("S3", f"delete s3://{self.bucket}/{key}"):
            self._s3.delete_object(Bucket=self.bucket, Key=key)


class _Stream(io.RawIOBase):
    """An S3 object body whose read errors are the processor's typed errors."""

    def __init__(self, body, action: str) -> None:
        self._body, self._action = body, action

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        with translated("S3", self._action):
            return self._body.read(None if size is None or size < 0 else size)

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._body.close()
        super().close()


def _content_type(key: str) -> str:
    if key.endswith(".parquet"):
        return "application/vnd.apache.parquet"
    if key.endswith(".jsonl"):
        return "application/x-ndjson"
    return "application/json"
