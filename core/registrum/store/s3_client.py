"""The S3 plumbing the bucket backend shares: `s3://` URLs, the boto3 client made from the
standard AWS chain, checksums as S3 spells them, and what a failed call means to the caller."""

from __future__ import annotations

import base64
import contextlib
import io
import os
from typing import Any

from registrum.errors import InvalidArgument, StoreError, StoreUnavailable

__all__ = ["b64", "make_client", "parse_s3_url", "s3_error"]


def parse_s3_url(url: str) -> tuple[str, str]:
    """`s3://bucket/some/prefix` -> ("bucket", "some/prefix/"); the prefix may be empty."""
    if not isinstance(url, str) or not url.startswith("s3://"):
        raise InvalidArgument(f"an S3 blob store URL looks like s3://BUCKET/PREFIX, got {url!r}")
    bucket, _, prefix = url[5:].partition("/")
    if not bucket:
        raise InvalidArgument(f"{url!r} names no bucket: use s3://BUCKET/PREFIX")
    prefix = prefix.strip("/")
    return bucket, f"{prefix}/" if prefix else ""


PUBLIC_URL = "REGISTRUM_S3_PUBLIC_URL"  # the endpoint as clients reach it, if not the same


def make_client(endpoint_url: str | None = None) -> Any:
    """A boto3 S3 client from the standard AWS chain and variables (`endpoint_url` overrides
    the endpoint). Path-style addressing when an endpoint is configured (MinIO, Ceph, moto
    answer on one host name); checksums only where an operation requires one, which every
    S3-compatible store accepts."""
    import boto3
    from botocore.config import Config

    endpoint = (
        endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    )
    config = Config(
        signature_version="s3v4",
        max_pool_connections=64,
        retries={"mode": "standard", "max_attempts": 5},
        s3={"addressing_style": "path" if endpoint else "auto"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )
    return boto3.session.Session().client("s3", config=config, endpoint_url=endpoint_url)


def b64(sha256_hex: str) -> str:
    """A hex sha256 as S3's `x-amz-checksum-sha256` spells it."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


def code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def is_missing(exc: Exception) -> bool:
    return code(exc) in {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


def s3_error(exc: Exception, doing: str) -> StoreError:
    """What a failed bucket call means to the caller, without credentials or URLs."""
    from botocore.exceptions import (
        ClientError,
        EndpointConnectionError,
        NoCredentialsError,
    )

    if isinstance(exc, NoCredentialsError):
        return StoreUnavailable(
            f"cannot {doing}: no AWS credentials found; set AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile or role of the standard AWS chain)"
        )
    if isinstance(exc, EndpointConnectionError):
        return StoreUnavailable(
            f"cannot {doing}: the object store does not answer; check AWS_ENDPOINT_URL "
            "and the network"
        )
    if isinstance(exc, ClientError):
        answered = code(exc)
        if answered in {"NoSuchBucket"}:
            return StoreUnavailable(f"cannot {doing}: the bucket does not exist; create it first")
        if answered in {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"}:
            return StoreUnavailable(
                f"cannot {doing}: the object store refused the credentials ({answered}); check "
                "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and the bucket policy"
            )
        return StoreError(f"cannot {doing}: the object store answered {answered or 'an error'}")
    return StoreUnavailable(f"cannot {doing}: {type(exc).__name__}")


class BodyReader(io.RawIOBase):
    """A GET's streamed body as a readable file."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._body.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._body.close()
        super().close()


def completed_part(part: dict[str, Any]) -> dict[str, Any]:
    """A part as CompleteMultipartUpload names it: number, ETag and its checksum, if any."""
    named = {"PartNumber": part["PartNumber"], "ETag": part["ETag"]}
    if part.get("ChecksumCRC32"):
        named["ChecksumCRC32"] = part["ChecksumCRC32"]
    return named
