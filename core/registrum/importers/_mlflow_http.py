"""MLflow's REST API over HTTP, for both ends of `registrum import mlflow`: the MLflow server
read from, and a Registrum server written to (it answers the same routes).

One `requests.Session` per end, reused by every call and thread (a connection pool as large
as the thread pool), retrying what a busy or restarting server answers (429 and 5xx,
refused connections) on every method: the importer's writes are idempotent, as MLflow's
own client assumes when it retries POSTs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from registrum.errors import RegistrumError, StoreUnavailable

API = "/api/2.0/mlflow"
ARTIFACTS = "/api/2.0/mlflow-artifacts/artifacts"
CHUNK = 1 << 20  # bytes per streamed piece of an artifact

try:  # orjson (registrum[server]) parses a page of 25,000 points several times faster
    import orjson

    def _loads(raw: bytes) -> Any:
        return orjson.loads(raw)

    def _dumps(value: Any) -> bytes:
        return orjson.dumps(value)

except ImportError:  # pragma: no cover - the standard library does the same, slower

    def _loads(raw: bytes) -> Any:
        return json.loads(raw)

    def _dumps(value: Any) -> bytes:
        return json.dumps(value, allow_nan=False).encode()


def _lenient(raw: bytes) -> Any:
    """JSON with bare NaN / Infinity (some servers write them), read with those values as
    protobuf-JSON's strings, so they stay exact on the way out; None if not JSON at all."""
    try:
        return json.loads(raw, parse_constant=str)
    except ValueError:
        return None


class MlflowCallFailed(RegistrumError):
    """An MLflow route answered an error: `error_code` is MLflow's code (for example
    `RESOURCE_DOES_NOT_EXIST`), `where` says which end (`source` or `target`)."""

    code = "mlflow_call_failed"

    def __init__(self, where: str, error_code: str, message: str, status: int) -> None:
        super().__init__(f"the {where} answered {status} {error_code}: {message}")
        self.where = where
        self.error_code = error_code
        self.status = status


def _auth_header(token: str | None, username: str | None, password: str | None) -> str | None:
    if token:
        return f"Bearer {token}"
    if username or password:
        import base64

        pair = f"{username or ''}:{password or ''}".encode()
        return "Basic " + base64.b64encode(pair).decode()
    return None


class MlflowHttp:
    """One end's MLflow REST API at `url` (a tracking URI: a path prefix is kept)."""

    def __init__(
        self,
        url: str,
        *,
        where: str,
        token: str | None = None,
        username: str | None = None,
        password: str | None = None,
        retries: int = 3,
        connections: int = 8,
        timeout: float = 120.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.where = where
        self.timeout = timeout
        self.session = requests.Session()
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            backoff_factor=0.5,
            status_forcelist=(429, 500, 502, 503, 504),
            allowed_methods=None,  # every method: the importer's writes are idempotent
            respect_retry_after_header=True,
            raise_on_status=False,
        )
        adapter = HTTPAdapter(pool_connections=2, pool_maxsize=connections, max_retries=retry)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        header = _auth_header(token, username, password)
        if header:
            self.session.headers["Authorization"] = header
        self.session.headers["User-Agent"] = "registrum-import-mlflow"
        # Uploads stream a body that cannot be replayed: retrying one would send a cut file.
        self.uploads = requests.Session()
        self.uploads.mount("http://", HTTPAdapter(pool_maxsize=connections, max_retries=0))
        self.uploads.mount("https://", HTTPAdapter(pool_maxsize=connections, max_retries=0))
        self.uploads.headers.update(self.session.headers)

    def call(self, method: str, path: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """`METHOD /api/2.0/mlflow{path}`: GET sends `args` as the query string, other
        methods as a JSON body; answers the JSON object (`{}` for an empty body)."""
        url = self.url + API + path
        try:
            if method == "GET":
                response = self.session.get(url, params=dict(args), timeout=self.timeout)
            else:
                response = self.session.request(
                    method,
                    url,
                    data=_dumps(dict(args)),
                    headers={"Content-Type": "application/json"},
                    timeout=self.timeout,
                )
        except requests.RequestException as exc:
            raise self.unreachable(exc) from None
        with response:
            return self._answer(response)

    def _answer(self, response: requests.Response) -> dict[str, Any]:
        raw = response.content
        body: Any = None
        if raw.strip():
            try:
                body = _loads(raw)
            except ValueError:
                body = _lenient(raw)
        if response.status_code == 200:
            if body is None and raw.strip():
                raise MlflowCallFailed(
                    self.where, "INVALID_RESPONSE", f"{response.url} answered no JSON object", 200
                )
            return body if isinstance(body, dict) else {}
        if isinstance(body, dict) and "error_code" in body:
            message = str(body.get("message", ""))
            raise MlflowCallFailed(
                self.where, str(body["error_code"]), message, response.status_code
            )
        code = "ENDPOINT_NOT_FOUND" if response.status_code == 404 else "HTTP_ERROR"
        text = raw[:200].decode("utf-8", "replace").strip()
        raise MlflowCallFailed(
            self.where,
            code,
            f"{response.request.method} {response.url}: {text}",
            response.status_code,
        )

    def unreachable(self, exc: BaseException) -> StoreUnavailable:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return StoreUnavailable(
            f"cannot reach the {self.where} at {self.url} ({reason}); check the URL and that "
            "the server runs, then run the import again to resume"
        )

    def list_artifacts(self, path: str) -> list[dict[str, Any]]:
        """The entries of the artifact folder `path` (one level): `{path, is_dir, file_size}`
        with `path` a basename; `[]` for a file or a missing folder."""
        try:
            response = self.session.get(
                self.url + ARTIFACTS, params={"path": path}, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise self.unreachable(exc) from None
        with response:
            files = self._answer(response).get("files", [])
        return [f for f in files if isinstance(f, dict)]

    def read_artifact(self, path: str) -> Iterator[bytes]:
        """The bytes of the artifact file `path`, streamed in pieces of at most 1 MiB."""
        try:
            response = self.session.get(
                f"{self.url}{ARTIFACTS}/{quote(path)}", stream=True, timeout=self.timeout
            )
        except requests.RequestException as exc:
            raise self.unreachable(exc) from None
        with response:
            if response.status_code != 200:
                self._answer(response)
            try:
                yield from response.iter_content(CHUNK)
            except requests.RequestException as exc:
                raise self.unreachable(exc) from None

    def write_artifact(self, path: str, chunks: Iterable[bytes]) -> None:
        """Streams `chunks` to the artifact file `path` (one PUT, chunked). A failure of
        `chunks` itself (the source) is raised as it is, not as this end's."""
        failed: list[BaseException] = []

        def body() -> Iterator[bytes]:
            try:
                yield from chunks
            except BaseException as exc:
                failed.append(exc)
                raise

        try:
            response = self.uploads.put(
                f"{self.url}{ARTIFACTS}/{quote(path)}",
                data=body(),
                headers={"Content-Type": "application/octet-stream"},
                timeout=self.timeout,
            )
        except Exception as exc:
            if failed:
                raise failed[0] from None
            if isinstance(exc, requests.RequestException):
                raise self.unreachable(exc) from None
            raise
        with response:
            self._answer(response)

    def close(self) -> None:
        self.session.close()
        self.uploads.close()
