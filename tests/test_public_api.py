import subprocess
import sys

import registrum


def test_public_names_are_pinned() -> None:
    assert registrum.__all__ == sorted(registrum.__all__)
    assert set(registrum.__all__) == {
        "AliasMoved",
        "AliasNotFound",
        "AlreadyExists",
        "ArtifactNotFound",
        "Client",
        "Conflict",
        "InvalidArgument",
        "Model",
        "ModelNotFound",
        "ModelVersionNotFound",
        "NotFound",
        "RegistrumError",
        "Run",
        "RunNotFound",
        "StoreUnavailable",
        "__version__",
        "active_run",
        "init",
        "load_model",
    }


def test_import_loads_no_heavy_modules() -> None:
    code = (
        "import sys, registrum, registrum.entities, registrum.client.http;"
        "heavy = [m for m in ('sqlalchemy', 'fastapi', 'numpy', 'torch', 'alembic', 'uvicorn')"
        " if m in sys.modules];"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_errors_map_to_codes_and_back() -> None:
    from registrum.errors import FilterSyntaxError, RunNotFound, error_for_code

    assert error_for_code("run_not_found") is RunNotFound
    assert error_for_code("invalid_filter") is FilterSyntaxError
    assert issubclass(RunNotFound, LookupError)
    assert isinstance(RunNotFound("x"), registrum.RegistrumError)
