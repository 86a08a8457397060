"""What `HttpStore` puts on the wire and takes off it: URL path segments, strict
JSON, streamed bodies, and error bodies mapped back to Registrum's errors."""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO, TypeGuard
from urllib.parse import quote

import requests

from registrum import validation as v
from registrum.errors import (
    FilterSyntaxError,
    InvalidArgument,
    RegistrumError,
    StoreError,
    StoreUnavailable,
    error_for_code,
)

CHUNK = 1 << 20
# Pauses before each new attempt of a keyed write whose answer did not arrive: its key makes
# the retry safe, as the server answers a write it has made with that write's first answer.
KEYED_PAUSES = (0.2, 0.5, 1.0)


# Path segments are checked with the store's own rules before they go into a
# URL: an empty or slash-holding segment would otherwise reach another route.


def q(segment: str) -> str:
    return quote(segment, safe="")


def run(run_id: Any) -> str:
    return q(v.run_id(run_id))


def key(key: Any) -> str:
    return q(v.key(key))


def sha(sha256: Any) -> str:
    return q(v.sha256(sha256))


def project(name: Any) -> str:
    return q(v.name(name, "project name"))


def model(name: Any) -> str:
    return q(v.name(name, "model name"))


def name(name: Any, what: str) -> str:
    return q(v.name(name, what))


def alias(alias: Any) -> str:
    return q(v.alias(alias))


def version(version: Any) -> str:
    number = v.version(version)
    return "latest" if number is None else str(number)


def ref(ref: Any) -> str:
    """`name@3` -> `name/versions/3` (also aliases and latest)."""
    name, part = v.model_ref(ref)
    return f"{q(name)}/versions/{q('latest' if part is None else str(part))}"


def dumps(body: Any) -> bytes:
    """Strict JSON: non-string keys and non-finite floats are the caller's error,
    as they are in-process (values that may be non-finite are encoded first)."""
    check_json(body, "body")
    try:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"request is not JSON-serialisable: {exc}") from None


def check_json(value: Any, where: str) -> None:
    if isinstance(value, dict):
        for k, x in value.items():
            if not isinstance(k, str):
                raise InvalidArgument(f"{where}: key {k!r} must be a string")
            check_json(x, f"{where}.{k}")
    elif isinstance(value, list | tuple):
        for i, x in enumerate(value):
            check_json(x, f"{where}[{i}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise InvalidArgument(f"{where} is {value}, which JSON cannot hold")


def dumps_batch(body: dict[str, Any]) -> bytes:
    """A metric batch, whose values are already encoded: fast path."""
    try:
        import orjson

        return orjson.dumps(body)
    except ImportError:
        return json.dumps(body, allow_nan=False, separators=(",", ":")).encode()


def loads(content: bytes) -> Any:
    try:
        import orjson

        return orjson.loads(content)
    except ImportError:
        return json.loads(content)


def seekable(stream: Any) -> TypeGuard[BinaryIO]:
    return hasattr(stream, "read") and hasattr(stream, "seekable") and bool(stream.seekable())


def chunks(stream: BinaryIO | Iterable[bytes]) -> Iterator[bytes]:
    if hasattr(stream, "read"):
        reader: BinaryIO = stream  # type: ignore[assignment]
        yield from iter(lambda: reader.read(CHUNK), b"")
    else:
        for chunk in stream:
            if chunk:
                yield bytes(chunk)


def iter_body(response: requests.Response) -> Iterator[bytes]:
    try:
        yield from response.iter_content(CHUNK)
    finally:
        response.close()


def error(response: requests.Response) -> RegistrumError:
    try:
        body = response.json()["error"]
        code, message = body.pop("code"), body.pop("message")
    except (ValueError, KeyError, TypeError):
        text = response.text[:500] if response.request.method != "HEAD" else ""
        code, message, body = "", f"HTTP {response.status_code} from the server: {text}", {}
        if response.status_code == 404:
            code = "not_found"
    cls = error_for_code(code)
    if cls is FilterSyntaxError:
        return FilterSyntaxError(message, position=int(body.get("position", 0)))
    if cls is RegistrumError:
        error = (
            StoreError(message) if response.status_code >= 500 else RegistrumError(message, **body)
        )
        error.status = response.status_code
        return error
    try:
        return cls(message, **body)
    except TypeError:
        return cls(message)


class Connection:
    """A pooled HTTP session to one server, speaking the `/api/v1` conventions."""

    def __init__(self, url: str, *, token: str | None = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.api = f"{self.url}/api/v1"
        self.timeout = timeout
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers["user-agent"] = "registrum-client"
        if token:
            self.session.headers["authorization"] = f"Bearer {token}"

    def _call(
        self, method: str, path: str, *, body: Any = None, **kwargs: Any
    ) -> requests.Response:
        headers = kwargs.pop("headers", {})
        if body is not None:
            kwargs["data"] = body if isinstance(body, bytes) else dumps(body)
            headers["content-type"] = "application/json"
        try:
            response = self.session.request(
                method, f"{self.api}{path}", headers=headers, timeout=self.timeout, **kwargs
            )
        except requests.ConnectionError as exc:
            raise StoreUnavailable(
                f"cannot reach the registrum server at {self.url}: {exc}"
            ) from None
        except requests.Timeout:
            raise StoreUnavailable(
                f"the registrum server at {self.url} did not answer in {self.timeout}s"
            ) from None
        except requests.RequestException as exc:
            raise StoreError(f"request to {self.url} failed: {exc}") from None
        if response.status_code >= 400:
            raise error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        return loads(response.content) if response.content else None

    def _write(self, method: str, path: str, *, key: str | None, **kwargs: Any) -> Any:
        """A non-idempotent write under an `Idempotency-Key` (`key`, or a new one), sent again
        with the same key while no answer arrives (the connection failed, or the server's
        database was unreachable): the server makes it once and answers every attempt alike."""
        key = v.idempotency_key(key) or str(uuid.uuid4())
        headers = {**kwargs.pop("headers", {}), "idempotency-key": key}
        for pause in KEYED_PAUSES:
            try:
                return self._json(method, path, headers=dict(headers), **kwargs)
            except StoreUnavailable:
                time.sleep(pause)
        return self._json(method, path, headers=dict(headers), **kwargs)

    def close(self) -> None:
        self.session.close()

    def _pages(
        self, path: str, params: dict[str, Any], limit: int | None, offset: int
    ) -> list[Any]:
        """Items `offset`..`offset + limit` of a paginated list, following its cursors."""
        if limit is not None:
            v.integer(limit, "limit", minimum=1)
        v.integer(offset, "offset", minimum=0, bits=64)
        wanted = None if limit is None else offset + limit
        items: list[Any] = []
        cursor = None
        while wanted is None or len(items) < wanted:
            query = {k: x for k, x in params.items() if x is not None}
            query["limit"] = 1000 if wanted is None else min(1000, wanted - len(items))
            if cursor:
                query["cursor"] = cursor
            data = self._json("GET", path, params=query)
            items.extend(data["items"])
            cursor = data["next_cursor"]
            if not cursor:
                break
        return items[offset:wanted]
