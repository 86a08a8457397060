"""Direct blob transfers: with an S3 bucket behind the store, clients move bytes straight to
and from it through presigned URLs, and the service layer only hands out URLs and checks
what arrived.

A blob counts as present only once its bytes are known to hash to its sha256:

* a single PUT (up to one part) goes to a staging key of its own and carries
  `x-amz-checksum-sha256`, signed into its URL. Where the bucket enforces it (AWS S3 does;
  `S3BlobStore.enforces_checksums` probes once) the bucket refused other bytes, so the object
  is published (copied inside the bucket) without being read; elsewhere it is checked like
  a multipart upload.
* a multipart upload (parts in parallel) goes to a key of its own under `.uploads/`; S3
  keeps only per-part checksums for it, so on completion the store reads the object back,
  hashes it, and only then publishes it in place: the blob's key gets a pointer to the
  upload, and the bytes are not copied (`verify_direct_upload`, run in the background). The
  client's part URLs die with the upload, so nobody can change those bytes afterwards.

So a hash that a client merely declares never becomes content that another upload
deduplicates against. What a completed upload claims (digest, size, who uploaded) is kept
in a small object beside its staging key: no server process holds it, and any replica's
sweep (`verify_pending_uploads`) finishes the check if the one that started it died.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import time
from collections.abc import Mapping
from typing import Any

from registrum import validation as v
from registrum.entities import BlobInfo
from registrum.errors import BlobNotFound, HashMismatch, InvalidArgument, NotFound
from registrum.store._base import StoreBase
from registrum.store.acting import Principal, current_principal, signed_in_as
from registrum.store.blobs_s3 import UPLOAD_NAME, S3BlobStore, b64, new_staging_name
from registrum.store.tracking.blob_access import BlobsMixin

# Parts of a direct upload (as the AWS SDKs send them); larger for blobs of over 10,000 parts.
PART_SIZE = 8 << 20
MAX_PARTS = 10_000  # S3's limit
MAX_SIZE = 5 << 40  # S3's largest object
URL_TTL = 3600  # seconds a presigned URL stays valid
URLS_PER_ANSWER = 1000  # part URLs handed out at once


def _upload_not_found() -> NotFound:
    return NotFound(
        "this upload does not exist, or is finished or expired (uploads without progress "
        "are swept after the server's partial-upload age); start the upload again"
    )


def encode_token(fields: dict[str, Any]) -> str:
    raw = json.dumps(fields, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_token(token: str) -> dict[str, Any]:
    """An upload token's fields, checked; anything else is the same 404 as an unknown one."""
    if not isinstance(token, str) or not 0 < len(token) <= 4096:
        raise _upload_not_found()
    try:
        fields = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _upload_not_found() from None
    ok = (
        isinstance(fields, dict)
        and isinstance(fields.get("n"), str)
        and UPLOAD_NAME.fullmatch(fields["n"]) is not None
        and (fields.get("u") is None or isinstance(fields.get("u"), str))
        and isinstance(fields.get("z"), int)
        and isinstance(fields.get("p"), int)
        and fields["p"] > 0
        and 0 <= fields["z"] <= MAX_SIZE
        and (fields.get("s") is None or isinstance(fields.get("s"), str))
    )
    if not ok:
        raise _upload_not_found()
    return dict(fields)


def part_size_for(size: int) -> int:
    """Parts of PART_SIZE, or larger ones (whole MiB) where 10,000 would not hold the blob."""
    return max(PART_SIZE, math.ceil(size / MAX_PARTS / (1 << 20)) << 20)


class DirectBlobsMixin(BlobsMixin, StoreBase):
    # Set by the server (False under --proxy-blobs); the embedded store writes itself.
    direct_transfers: bool = False

    def _bucket(self) -> S3BlobStore | None:
        if self.direct_transfers and isinstance(self.blobs, S3BlobStore):
            return self.blobs
        return None

    # -- starting, resuming, completing ------------------------------------------------

    def begin_direct_upload(self, *, sha256: str | None, size: int) -> dict[str, Any]:
        """How the caller sends a blob of `size` bytes: `mode` "proxy" (through the server,
        as without a bucket), `present` (content it may use already: nothing to send), a
        single presigned PUT (`url`, `headers`) or a multipart upload (`parts` arrived,
        `missing` part numbers, whose URLs `direct_part_urls` gives)."""
        if sha256 is not None:
            v.sha256(sha256)
        v.integer(size, "size", minimum=0, bits=64)
        if size > MAX_SIZE:
            raise InvalidArgument(f"size {size} is over the object store's limit of 5 TiB")
        s3 = self._bucket()
        if s3 is None:
            return {"mode": "proxy"}
        if sha256 is not None and self.blob_exists(sha256):
            return {"mode": "direct", "present": True, "sha256": sha256, "size": size}
        part_size = part_size_for(size)
        name = new_staging_name()
        if sha256 is not None and size <= part_size:
            token = encode_token({"n": name, "u": None, "z": size, "p": part_size, "s": sha256})
            return {"mode": "direct", "present": False, **self._single(s3, token)}
        upload_id = s3.create_upload(s3.upload_key(name))
        token = encode_token({"n": name, "u": upload_id, "z": size, "p": part_size, "s": sha256})
        return {
            "mode": "direct",
            "present": False,
            **self._multipart(s3, token, decode_token(token), []),
        }

    def direct_upload_state(self, token: str) -> dict[str, Any]:
        """Where an upload stands: "uploading" (with the parts that arrived and those
        missing), "verifying", "done" or "rejected" (with the reason)."""
        s3 = self._require_bucket()
        fields = decode_token(token)
        claim = self._claim(s3, fields["n"])
        if claim is not None:
            return _claimed(token, claim)
        sha = fields.get("s")
        if fields["u"] is None:
            if sha is not None and self.blob_exists(sha):  # published by S3 vouching for it
                return {"upload": token, "state": "done", "sha256": sha, "size": fields["z"]}
            return self._single(s3, token)
        try:
            parts = s3.list_parts(s3.upload_key(fields["n"]), fields["u"])
        except BlobNotFound:
            if sha and self.blob_exists(sha):
                return {"upload": token, "state": "done", "sha256": sha, "size": fields["z"]}
            raise _upload_not_found() from None
        return self._multipart(s3, token, fields, parts)

    def complete_direct_upload(
        self, token: str, *, sha256: str | None, size: int
    ) -> dict[str, Any]:
        """Closes an upload of `size` bytes declared to hash to `sha256`. Answers "done"
        when the bucket vouched for the bytes, else "verifying": then `verify_direct_upload`
        must run (the server runs it in the background; the client polls the state).

        A multipart upload may leave `sha256` out: the server's read-back hashes the bytes
        anyway, and the blob is stored under the digest it finds (the client need not read
        a large file twice); the state tells the digest once it is "done"."""
        v.integer(size, "size", minimum=0, bits=64)
        s3 = self._require_bucket()
        fields = decode_token(token)
        if sha256 is None:
            sha256 = fields.get("s")
        if sha256 is not None:
            v.sha256(sha256)
        elif fields["u"] is None:
            raise InvalidArgument("a single PUT's upload is completed with its sha256")
        if size != fields["z"]:
            raise InvalidArgument(f"the upload was started for {fields['z']} bytes, not {size}")
        if fields.get("s") not in (None, sha256):
            raise InvalidArgument("the upload was started for another sha256")
        name = fields["n"]
        claim = self._claim(s3, name)
        if claim is not None:
            return _claimed(token, claim)
        staging = s3.staging_key(name)
        if fields["u"] is None:
            assert sha256 is not None
            checksum = s3.staged_checksum(staging)
            if checksum is None or checksum[0] != size:
                raise InvalidArgument("nothing of this size arrived at the upload's URL yet")
            if checksum[1] == b64(sha256) and s3.enforces_checksums():
                # The bucket refused any other bytes at this PUT: published without reading.
                s3.publish(staging, sha256, size)
                self._record_blob(BlobInfo(sha256, size))
                return {"upload": token, "state": "done", "sha256": sha256, "size": size}
        else:
            try:
                parts = s3.list_parts(s3.upload_key(name), fields["u"])
            except BlobNotFound:
                raise _upload_not_found() from None
            _check_parts(parts, size, fields["p"])
            s3.complete(s3.upload_key(name), fields["u"], parts)
        principal = current_principal()
        self._write_claim(
            s3,
            name,
            {
                "sha256": sha256,
                "size": size,
                "user_id": principal.user_id if principal else None,
                "user": principal.name if principal else None,
                "in_place": fields["u"] is not None,  # under .uploads/, published in place
            },
        )
        return {"upload": token, "state": "verifying", "sha256": sha256, "size": size}

    # -- checking ---------------------------------------------------------------------

    def verify_direct_upload(self, token: str) -> str:
        """Reads a completed upload back, hashes it, and publishes it under its sha256 if it
        matches the claim (granting its uploader the blob), else drops it and records why.
        Returns the state it leaves; running it twice does no harm."""
        s3 = self._require_bucket()
        return self._verify(s3, decode_token(token)["n"])

    def verify_pending_uploads(self, older_than_seconds: float = 300.0) -> int:
        """Checks completed uploads whose check has waited `older_than_seconds` (the server
        that started it died); returns how many it settled."""
        s3 = self._bucket()
        if s3 is None:
            return 0
        cutoff = time.time() - older_than_seconds
        settled = 0
        for item in s3.list_staged():
            key: str = item["Key"]
            if key.endswith(".claim") and item["LastModified"].timestamp() < cutoff:
                name = key.rsplit("/", 1)[-1].removesuffix(".claim")
                claim = self._claim(s3, name) if UPLOAD_NAME.fullmatch(name) else None
                if claim is not None and _claimed("", claim)["state"] == "verifying":
                    settled += self._verify(s3, name) != "verifying"
        return settled

    def _verify(self, s3: S3BlobStore, name: str) -> str:
        claim = self._claim(s3, name)
        if claim is None:
            raise _upload_not_found()
        state = _claimed("", claim)["state"]
        if state != "verifying":
            return str(state)
        in_place = bool(claim.get("in_place"))
        key = s3.upload_key(name) if in_place else s3.staging_key(name)
        if s3.staged_size(key) is None:  # being published by another replica
            return "verifying"
        digest, size = s3.hash_staged(key)
        if (claim["sha256"] or digest, claim["size"]) != (digest, size):
            s3.remove(key)
            declared = claim["sha256"] or "(none declared)"
            reason = (
                f"the uploaded content hashes to sha256 {digest} ({size} bytes), not the "
                f"declared {declared} ({claim['size']} bytes); nothing was kept"
            )
            self._write_claim(s3, name, {**claim, "rejected": reason})
            return "rejected"
        if in_place:
            s3.publish_in_place(name, digest, size)
        else:
            s3.publish(key, digest, size)
        uploader = (
            Principal(user_id=claim["user_id"], name=claim["user"])
            if claim.get("user_id") is not None
            else None
        )
        with signed_in_as(uploader):
            self._record_blob(BlobInfo(digest, size))
        # Kept (until the sweep of old staging objects) so that the client polling it learns.
        self._write_claim(s3, name, {**claim, "sha256": digest, "done": True})
        return "done"

    # -- downloads --------------------------------------------------------------------

    def blob_download_url(self, sha256: str) -> str | None:
        """A presigned GET for a blob the caller may read, or None where the server sends
        the bytes itself; `BlobNotFound` as for reading it."""
        s3 = self._bucket()
        if s3 is None:
            return None
        if not self.blob_exists(sha256):
            raise BlobNotFound(f"blob {sha256} is not stored", sha256=sha256)
        return s3.presign("get_object", URL_TTL, Key=s3.located(sha256)[0])

    # -- helpers ----------------------------------------------------------------------

    def _require_bucket(self) -> S3BlobStore:
        s3 = self._bucket()
        if s3 is None:
            raise _upload_not_found()
        return s3

    def _single(self, s3: S3BlobStore, token: str) -> dict[str, Any]:
        # Always to a staging key of its own, even where the bucket checks the checksum: a
        # blob already at its key proves nothing about the bytes this caller holds.
        fields = decode_token(token)
        checksum = b64(fields["s"])
        key = s3.staging_key(fields["n"])
        url = s3.presign("put_object", URL_TTL, Key=key, ChecksumSHA256=checksum)
        return {
            "upload": token,
            "state": "uploading",
            "part_size": fields["p"],
            "url": url,
            "headers": {"x-amz-checksum-sha256": checksum},
        }

    def _multipart(
        self, s3: S3BlobStore, token: str, fields: dict[str, Any], parts: list[dict[str, Any]]
    ) -> dict[str, Any]:
        count = max(1, math.ceil(fields["z"] / fields["p"]))
        done = {int(p["PartNumber"]) for p in parts}
        return {
            "upload": token,
            "state": "uploading",
            "part_size": fields["p"],
            "part_count": count,
            "parts": [{"number": int(p["PartNumber"]), "size": int(p["Size"])} for p in parts],
            "missing": [n for n in range(1, count + 1) if n not in done],
        }

    def direct_part_urls(self, token: str, crc32: Mapping[str, Any]) -> dict[str, Any]:
        """Presigned PUTs for parts of a multipart upload, each with the part's CRC32
        (base64, as `x-amz-checksum-crc32`) signed in: the bucket refuses a part whose bytes
        do not match it. At most URLS_PER_ANSWER at once."""
        s3 = self._require_bucket()
        fields = decode_token(token)
        if fields["u"] is None:
            raise InvalidArgument("this upload is a single PUT: it has no parts")
        if not isinstance(crc32, Mapping) or not 0 < len(crc32) <= URLS_PER_ANSWER:
            raise InvalidArgument(
                f"crc32 must map 1 to {URLS_PER_ANSWER} part numbers to their CRC32 checksums"
            )
        count = max(1, math.ceil(fields["z"] / fields["p"]))
        key = s3.upload_key(fields["n"])
        urls = {}
        for number, checksum in crc32.items():
            n = _part_number(number, count)
            urls[str(n)] = s3.presign(
                "upload_part",
                URL_TTL,
                Key=key,
                UploadId=fields["u"],
                PartNumber=n,
                ChecksumCRC32=_crc32(checksum),
            )
        return {"upload": token, "urls": urls}

    def _claim(self, s3: S3BlobStore, name: str) -> dict[str, Any] | None:
        raw = s3.read_small(_claim_key(s3, name))
        return None if raw is None else dict(json.loads(raw))

    def _write_claim(self, s3: S3BlobStore, name: str, claim: dict[str, Any]) -> None:
        s3.write_small(_claim_key(s3, name), json.dumps(claim).encode())


def _claim_key(s3: S3BlobStore, name: str) -> str:
    return s3.staging_key(f"{name}.claim")


def _claimed(token: str, claim: dict[str, Any]) -> dict[str, Any]:
    state = {"upload": token, "sha256": claim["sha256"], "size": claim["size"]}
    if "rejected" in claim:
        return {**state, "state": "rejected", "reason": claim["rejected"]}
    return {**state, "state": "done" if claim.get("done") else "verifying"}


def _part_number(number: Any, count: int) -> int:
    if not isinstance(number, str) or not number.isdigit() or not 1 <= int(number) <= count:
        raise InvalidArgument(f"part numbers run from 1 to {count}, got {number!r}")
    return int(number)


def _crc32(checksum: Any) -> str:
    """A part's CRC32 as S3 spells it: the 4 bytes, big-endian, in base64."""
    try:
        ok = isinstance(checksum, str) and len(base64.b64decode(checksum, validate=True)) == 4
    except (ValueError, binascii.Error):
        ok = False
    if not ok:
        raise InvalidArgument(
            f"a part's crc32 is its CRC32 as 4 big-endian bytes in base64, got {checksum!r}"
        )
    return str(checksum)


def _check_parts(parts: list[dict[str, Any]], size: int, part_size: int) -> None:
    """Refuses to complete an upload whose parts do not add up to `size` (it stays open, so
    the client can send what is missing)."""
    count = max(1, math.ceil(size / part_size))
    numbers = [int(p["PartNumber"]) for p in parts]
    missing = sorted(set(range(1, count + 1)) - set(numbers))
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise InvalidArgument(f"parts {shown} of {count} have not arrived yet; send them first")
    if sorted(numbers) != list(range(1, count + 1)) or sum(int(p["Size"]) for p in parts) != size:
        raise HashMismatch(
            f"the parts that arrived hold {sum(int(p['Size']) for p in parts)} bytes in "
            f"{len(numbers)} parts, not {size} bytes in {count}; start the upload again"
        )
