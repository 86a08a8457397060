"""The kit every framework integration is built from: joining the active run or starting one,
finishing only a run it started, one failure guard, logging and registering the trained model,
a scratch folder, pickling, a clear error for a missing extra, and loading a registered
version with its lineage recorded.

Integrations (`registrum_lightning`, `registrum_keras`, ...) import this and only translate
their framework's events into these calls and `Run`'s; training code does not need it.

The guard: a failure inside an integration becomes one `RuntimeWarning` per place, one line
that says training goes on, and never reaches the training loop. Under `REGISTRUM_STRICT=1`
it ends a run the integration started as failed and raises, so that no failure goes unseen
in tests. A store that is only unreachable is not a failure: what was logged waits in the
spool (the client says so itself), so it never raises.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import tempfile
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

from registrum import validation
from registrum.client.api import Client
from registrum.client.run import Run, active_run
from registrum.client.settings import ClientSettings
from registrum.client.start import init
from registrum.client.writer import describe_error
from registrum.entities import ModelVersion
from registrum.errors import RegistrumError, StoreUnavailable

__all__ = [
    "JOB_TYPES",
    "Tracked",
    "Tracking",
    "check_options",
    "fetch_model",
    "guard",
    "guarded",
    "raises",
    "require",
    "start_run",
    "strict",
    "validation",
    "warn_once",
]

# The job types of the runs integrations start: a fit, a search over fits, one of its
# trials, and an evaluation of a model.
JOB_TYPES = ("train", "sweep", "trial", "evaluation")

Hook = TypeVar("Hook", bound=Callable[..., Any])


def require(module: str, *, extra: str, needs: str | None = None) -> ModuleType:
    """Imports `module` for integration `registrum_<extra>`; when it is missing, raises an
    ImportError that says which extra installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise ImportError(
            f'registrum_{extra} needs {needs or module}: pip install "registrum[{extra}]"'
        ) from exc


def check_options(
    owner: str,
    project: str | None,
    *,
    register_as: str | None = None,
    aliases: Sequence[str] = (),
    run_options: Mapping[str, Any] | None = None,
) -> list[str]:
    """Raises at construction for options `registrum.init` would refuse later (unknown run
    options, bad names); returns the aliases as a list."""
    try:
        inspect.signature(init).bind(project, **dict(run_options or {}))
    except TypeError as exc:
        raise TypeError(f"{owner}: {exc}; see registrum.init") from None
    if project is not None:
        validation.name(project, "project name")
    if register_as is not None:
        validation.name(register_as, "model name")
    if isinstance(aliases, str):
        raise TypeError(f"aliases must be a list of names, not the string {aliases!r}")
    for alias in aliases:
        validation.alias(alias)
    if (run_options or {}).get("id") is not None:
        validation.run_id((run_options or {})["id"])
    return list(aliases)


def strict(run: Run | None = None) -> bool:
    """Whether failures raise: the run's setting, else `REGISTRUM_STRICT`."""
    if run is not None:
        return run.settings.strict
    try:
        return ClientSettings.from_env().strict
    except RegistrumError:
        return False


def warn_once(warned: set[str], where: str, exc: BaseException) -> None:
    """One `RuntimeWarning` per place (`warned` remembers them), on one line: training goes on."""
    if where in warned:
        return
    warned.add(where)
    warnings.warn(
        f"registrum: {where} failed; training goes on without it: {describe_error(exc)}",
        RuntimeWarning,
        stacklevel=4,
    )


def raises(exc: Exception, run: Run | None = None) -> bool:
    """Whether the guard raises `exc`: under strict mode, unless the store is only
    unreachable (what was logged then waits in the spool, and the client says so)."""
    return strict(run) and not isinstance(exc, StoreUnavailable)


@contextmanager
def guard(where: str, warned: set[str], run: Run | None = None) -> Iterator[None]:
    """The guard around work that ends no run of its own (a sweep's bookkeeping)."""
    try:
        yield
    except Exception as exc:
        if raises(exc, run):
            raise
        warn_once(warned, where, exc)


def start_run(project: str | None, run_options: Mapping[str, Any], *, job_type: str | None) -> Run:
    """Starts a run with an integration's options: `job_type` unless they name one (None: a
    resumed run keeps its own). A new run without a name gets a readable one from `init`."""
    options = dict(run_options)
    if job_type is not None:
        options["job_type"] = options.get("job_type") or job_type
    if not options.get("name"):
        options.pop("name", None)
    return init(project, **options)


class Tracking:
    """One integration object's hold on a run: the run it joined or started, the failures it
    has warned about, and a scratch folder; only the options survive pickling.

    Args:
        owner: the integration's public name, which warnings name (`RegistrumCallback`).
        project: the project of a run it starts.
        run_options: the options of `registrum.init` for a run it starts.
        register_as: the model name the trained model is registered under, if any.
        aliases: aliases the registered version gets.
        keeps_run_id: whether a copy or a pickle keeps `run_id`.
    """

    OPTIONS = ("owner", "project", "run_options", "register_as", "aliases", "keeps_run_id")

    def __init__(
        self,
        owner: str,
        project: str | None,
        run_options: Mapping[str, Any],
        *,
        register_as: str | None = None,
        aliases: Sequence[str] = (),
        keeps_run_id: bool = False,
    ) -> None:
        options = dict(run_options)
        if isinstance(options.get("parent"), Run):  # a Run cannot travel to other processes
            options["parent"] = options["parent"].id
        self.owner = owner
        self.project = project
        self.run_options = options
        self.register_as = register_as
        self.aliases = list(aliases)
        # Whether a copy remembers the run (a Lightning trainer's test after a spawned fit
        # logs into the fit's run), or starts clean (a cloned estimator's fit is a new run).
        self.keeps_run_id = keeps_run_id
        self.run_id: str | None = None  # the run the latest stage recorded into
        self._reset()

    @classmethod
    def checked(
        cls,
        owner: str,
        project: str | None,
        run_options: Mapping[str, Any],
        *,
        register_as: str | None = None,
        aliases: Sequence[str] = (),
        keeps_run_id: bool = False,
    ) -> Tracking:
        """A Tracking whose options are checked first (`check_options`): bad options raise
        when the integration is made, not in the middle of training."""
        checked = check_options(
            owner, project, register_as=register_as, aliases=aliases, run_options=run_options
        )
        return cls(
            owner,
            project,
            run_options,
            register_as=register_as,
            aliases=checked,
            keeps_run_id=keeps_run_id,
        )

    def _reset(self) -> None:
        self.run: Run | None = None
        self.owns = False
        self.warned: set[str] = set()
        self._folder: tempfile.TemporaryDirectory[str] | None = None

    def __getstate__(self) -> dict[str, Any]:
        state = {name: getattr(self, name) for name in self.OPTIONS}
        state["run_id"] = self.run_id if self.keeps_run_id else None
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._reset()

    # -- the run ------------------------------------------------------------------------

    def begin(self, *, job_type: str | None = "train", join: bool = True, **options: Any) -> Run:
        """Joins the active run (with `join`), or starts one with the integration's options,
        overridden by `options`. A run still held (the previous stage raised before its end)
        is ended as failed first."""
        if self.run is not None:
            self.end("failed")
        self._reset()
        run = active_run() if join else None
        if run is None:
            run = start_run(self.project, {**self.run_options, **options}, job_type=job_type)
            self.owns = True
        self.run, self.run_id = run, run.id
        return run

    def end(self, status: str = "finished") -> None:
        """Finishes the run if this object started it (a joined run is its owner's to end),
        and removes the scratch folder."""
        run, owns, folder = self.run, self.owns, self._folder
        self.run, self.owns, self._folder = None, False, None
        try:
            if run is not None and owns:
                run.finish(status)
        finally:
            if folder is not None:
                folder.cleanup()

    def scratch(self) -> Path:
        """A folder for the files of this stage (models, tables), removed at `end`."""
        if self._folder is None:
            self._folder = tempfile.TemporaryDirectory(prefix="registrum-")
        return Path(self._folder.name)

    # -- failures -----------------------------------------------------------------------

    def failed(self, where: str, exc: Exception) -> None:
        """The one guard: a warning once per place, or under strict mode the run ended as
        failed and the error raised; an unreachable store only warns."""
        if raises(exc, self.run):
            self.end("failed")
            raise exc
        warn_once(self.warned, f"{self.owner}.{where}", exc)

    @contextmanager
    def guard(self, where: str) -> Iterator[None]:
        """`with tracking.guard("on_fit_end"):` runs a step under the guard."""
        try:
            yield
        except Exception as exc:
            self.failed(where, exc)

    # -- the model ----------------------------------------------------------------------

    def log_model(
        self,
        path: str | Path,
        *,
        flavor: str,
        metadata: Mapping[str, Any] | None = None,
        metrics: Mapping[str, float] | None = None,
        params: Mapping[str, Any] | None = None,
        signature: Mapping[str, Any] | None = None,
    ) -> ModelVersion | None:
        """Logs the trained model as the run's candidate and registers it under
        `register_as` when one was given; returns the version when the store made it now."""
        if self.run is None or self.run.disabled:
            return None
        model = self.run.log_model(path, flavor=flavor, metadata=metadata)
        if self.register_as is None:
            return None
        return self.run.register_model(
            self.register_as,
            model=model,
            flavor=flavor,
            metrics=metrics,
            params=params,
            aliases=self.aliases,
            signature=signature,
        )


class Tracked:
    """A base for integration objects that hold a `tracking`: their public `run_id`."""

    tracking: Tracking

    @property
    def run_id(self) -> str | None:
        """The run the latest fit (or test, or evaluation) recorded into."""
        return self.tracking.run_id


def guarded(hook: Hook) -> Hook:
    """Runs a framework hook of an object holding a `tracking` under the guard: its failure
    becomes a warning (under strict mode, raises) and never reaches the framework."""

    @functools.wraps(hook)
    def run_guarded(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return hook(self, *args, **kwargs)
        except Exception as exc:
            self.tracking.failed(hook.__name__, exc)
            return None

    return run_guarded  # type: ignore[return-value]


def fetch_model(
    ref: str,
    *,
    flavor: str | None,
    store: str | None = None,
    needs: Sequence[str] = (),
    logged_by: str = "RegistrumCallback",
) -> tuple[ModelVersion, Path]:
    """Downloads model version `ref` (`name@alias`, `name@3`, `name`) into the local cache and
    returns it with its folder. Inside an active run of the same store (online or offline)
    the run records that it used the version, so the version's evaluation history and
    lineage show that run.

    Raises ValueError when the version is not of `flavor` (None: any) or its metadata lacks
    `needs`.
    """
    run = active_run()
    if run is not None and (run.disabled or store not in (None, run.settings.store)):
        run = None  # it cannot record the use: disabled, or a version of another store
    with Client(store if run is None else run.settings.store) as client:
        version = client.model_version(ref)
        metadata = version.artifact.metadata or {}
        if (flavor is not None and version.flavor != flavor) or not set(needs) <= metadata.keys():
            raise ValueError(
                f"{version.ref} is a {version.flavor!r} model, not one {logged_by} logged; "
                "load it with its own framework's load_model"
            )
        if run is not None:
            return version, run.use_model(version.ref)  # the version resolved above
        folder = client.settings.home / "cache" / "models" / version.model / str(version.version)
        return version, client.download(version.ref, folder)


def model_file(version: ModelVersion, folder: Path, suffixes: Sequence[str]) -> Path:
    """The one file of downloaded `version` whose name ends in one of `suffixes` (what a
    version logged by hand holds: `run.log_model("model.json", flavor="xgboost")`).
    ValueError when it holds none or several."""
    ends = tuple(s.lower() for s in suffixes)
    found = sorted(folder / f.path for f in version.artifact.files if f.path.lower().endswith(ends))
    if len(found) != 1:
        raise ValueError(
            f"{version.ref} holds {len(found)} files ending in {' or '.join(suffixes)}; "
            "load_model needs one"
        )
    return found[0]


def log_samples(
    run: Run, key: str, inputs: Any, outputs: Any, targets: Any | None, *, step: int
) -> None:
    """Logs a few validation samples, as a callback's `log_samples=` asks: a table `key`
    (`prediction` and, for class scores, `confidence`; `target`; `input`, a row's values
    when it has at most 16, else its shape) and, for image-like inputs (N×H×W, N×C×H×W or
    N×H×W×C), each image as `key/<i>` captioned with its prediction and target."""
    import numpy as np

    x = np.asarray(inputs)
    out = np.asarray(outputs, dtype=np.float64)
    rows = len(x)
    table: dict[str, list[Any]] = {}
    if out.ndim == 2 and out.shape[1] > 1:  # class scores (logits or probabilities)
        scores = out - out.max(axis=1, keepdims=True)
        chance = np.exp(scores) / np.exp(scores).sum(axis=1, keepdims=True)
        if np.all((out >= 0) & (out <= 1)) and np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
            chance = out  # probabilities already
        table["prediction"] = out.argmax(axis=1).tolist()
        table["confidence"] = chance.max(axis=1).round(4).tolist()
    else:
        table["prediction"] = out.reshape(rows, -1)[:, 0].tolist() if out.size else []
    if targets is not None:
        y = np.asarray(targets)
        table["target"] = [t.tolist() if hasattr(t, "tolist") else t for t in y[:rows]]
    flat = x.reshape(rows, -1) if rows else x
    if rows and flat.shape[1] <= 16:
        table["input"] = [str(row.round(4).tolist()) for row in flat.astype(np.float64)]
    else:
        table["input"] = [f"{tuple(x.shape[1:])}" for _ in range(rows)]
    run.log_table(key, table, step=step)
    if x.ndim == 3:
        height, width = x.shape[1:]
    elif x.ndim == 4 and x.shape[1] in (1, 3, 4):  # N×C×H×W
        height, width = x.shape[2:]
    elif x.ndim == 4 and x.shape[3] in (1, 3, 4):  # N×H×W×C
        height, width = x.shape[1:3]
    else:
        height = width = 0
    if height > 1 and width > 1:
        for i in range(rows):
            caption = f"prediction {table['prediction'][i]}"
            if "target" in table:
                caption += f", target {table['target'][i]}"
            run.log_image(f"{key}/{i}", x[i], step=step, caption=caption)
