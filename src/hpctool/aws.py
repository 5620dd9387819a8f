"""The one module that talks to AWS through boto3: clients, and small, general S3 calls.

Every AWS failure becomes an :class:`~hpctool.errors.AwsError` that names the bucket or key and
says what to check.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError

from hpctool.errors import AwsError

_CREDENTIALS_HINT = "configure AWS credentials (aws configure, AWS_PROFILE or an instance role)"


def _error_code(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", ""))
    return ""


def _wrap(exc: Exception, what: str, hint: str) -> AwsError:
    if isinstance(exc, NoCredentialsError):
        return AwsError(f"{what}: no AWS credentials", _CREDENTIALS_HINT)
    code = _error_code(exc)
    if code in {"AccessDenied", "AccessDeniedException", "403"}:
        return AwsError(f"{what}: access denied", hint)
    detail = f"{code}: {exc}" if code else str(exc)
    return AwsError(f"{what}: {detail}", hint)


def client(service: str, region: str | None = None) -> Any:
    """A boto3 client (moto's mock applies, as for any boto3 client)."""
    return boto3.session.Session(region_name=region).client(service)


def sha256_base64(data: bytes) -> str:
    """The SHA-256 of ``data`` in the base64 form S3's ChecksumSHA256 takes."""
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


class S3:
    """A few S3 calls on one client."""

    def __init__(self, region: str | None = None, s3_client: Any = None) -> None:
        self.client = s3_client if s3_client is not None else client("s3", region)

    def etags(self, bucket: str, prefix: str) -> dict[str, str]:
        """Key -> ETag (without quotes) of every object under ``prefix``."""
        found: dict[str, str] = {}
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    found[item["Key"]] = item["ETag"].strip('"')
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"s3://{bucket}/{prefix}: cannot list",
                        f"check that bucket {bucket} exists and that you may s3:ListBucket on it") from exc
        return found

    def get(self, bucket: str, key: str) -> bytes | None:
        """The object's bytes, or None when it does not exist."""
        try:
            return self.client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except ClientError as exc:
            if _error_code(exc) in {"NoSuchKey", "404"}:
                return None
            raise _wrap(exc, f"s3://{bucket}/{key}: cannot read", f"check s3:GetObject on bucket {bucket}") from exc
        except BotoCoreError as exc:
            raise _wrap(exc, f"s3://{bucket}/{key}: cannot read", f"check s3:GetObject on bucket {bucket}") from exc

    def put(self, bucket: str, key: str, data: bytes, content_type: str = "application/octet-stream") -> None:
        """Upload ``data``; S3 checks it against its SHA-256 and refuses a corrupted upload."""
        try:
            self.client.put_object(Bucket=bucket, Key=key, Body=data, ContentType=content_type,
                                   ChecksumSHA256=sha256_base64(data))
        except (ClientError, BotoCoreError) as exc:
            raise _wrap(exc, f"s3://{bucket}/{key}: cannot upload", f"check s3:PutObject on bucket {bucket}") from exc
