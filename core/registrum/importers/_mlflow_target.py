"""Where `registrum import mlflow` writes: always through the Registrum MLflow adapter's
routes, so imported history is stored exactly as if MLflow's client had logged it.

Two implementations of one small interface: a Registrum server spoken to over HTTP (the same
MLflow REST routes its users' clients call), or an embedded store whose route handlers and
artifact functions run in-process (`registrum.server.mlflow._wire.call`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from registrum.errors import RegistrumError, StoreUnavailable
from registrum.importers._mlflow_http import MlflowCallFailed, MlflowHttp

if TYPE_CHECKING:
    from registrum.store import Store

Json = dict[str, Any]


class Target(Protocol):
    """The Registrum store an import writes to, spoken to in MLflow's terms."""

    url: str

    def call(self, method: str, path: str, args: Mapping[str, Any]) -> Json:
        """Runs the MLflow route `METHOD /api/2.0/mlflow{path}`; raises MlflowCallFailed."""
        ...

    def list_artifacts(self, path: str) -> list[Json]:
        """One artifact folder's entries `{path (basename), is_dir, file_size}`."""
        ...

    def write_artifact(self, path: str, chunks: Iterable[bytes]) -> None:
        """Stores the artifact file `path` from streamed `chunks`."""
        ...

    def close(self) -> None: ...


class EmbeddedTarget:
    """A store opened in-process: the adapter's handlers called as functions."""

    def __init__(self, store: Store, url: str) -> None:
        from registrum.server.mlflow import artifacts, logged_models, registry, tracking

        del logged_models, registry, tracking  # importing them registers their routes
        self.store = store
        self.url = url
        self._artifacts = artifacts

    def call(self, method: str, path: str, args: Mapping[str, Any]) -> Json:
        from registrum.server.mlflow import _wire

        try:
            return _wire.call(self.store, method, path, args)
        except _wire.MlflowError as exc:
            raise MlflowCallFailed("target", exc.code, exc.message, exc.status) from None
        except RegistrumError as exc:
            error = _wire.translate(exc)
            raise MlflowCallFailed("target", error.code, error.message, error.status) from None

    def list_artifacts(self, path: str) -> list[Json]:
        answer = self._guard(lambda: self._artifacts.list_artifacts(self.store, path))
        files = answer.get("files", []) if isinstance(answer, dict) else answer
        return [f for f in files if isinstance(f, dict)]

    def write_artifact(self, path: str, chunks: Iterable[bytes]) -> None:
        self._guard(lambda: self._artifacts.put_artifact(self.store, path, chunks))

    def _guard(self, work: Any) -> Any:
        from registrum.server.mlflow import _wire

        try:
            return work()
        except _wire.MlflowError as exc:
            raise MlflowCallFailed("target", exc.code, exc.message, exc.status) from None
        except RegistrumError as exc:
            if isinstance(exc, MlflowCallFailed | StoreUnavailable):  # the source's, or fatal
                raise
            error = _wire.translate(exc)
            raise MlflowCallFailed("target", error.code, error.message, error.status) from None

    def close(self) -> None:
        self.store.close()


def open_target(
    store: str | None, *, token: str | None = None, connections: int = 8, retries: int = 3
) -> Target:
    """The target for `store`: an `http(s)://` Registrum server (with `token`, default
    REGISTRUM_TOKEN; `retries` as for the source), a database URL, or None for REGISTRUM_URL
    or the embedded default."""
    from registrum.client.settings import ClientSettings

    settings = ClientSettings.from_env(store=store)
    if settings.store and settings.store.startswith(("http://", "https://")):
        return MlflowHttp(
            settings.store,
            where="target",
            token=token or settings.token,
            connections=connections,
            retries=retries,
        )
    from registrum.client.transport import open_transport
    from registrum.store import Store

    opened = open_transport(settings.store, home=settings.home)
    assert isinstance(opened, Store)
    return EmbeddedTarget(opened, opened.engine.url.render_as_string(hide_password=True))
