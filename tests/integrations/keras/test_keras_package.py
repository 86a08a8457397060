"""The public surface of `registrum_keras`, and what it says when Keras is missing."""

import subprocess
import sys

import pytest


def test_without_keras_the_import_error_says_what_to_install() -> None:
    code = "import sys; sys.modules['keras'] = None; import registrum_keras"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode != 0
    assert 'registrum_keras needs Keras 3: pip install "registrum[keras]"' in out.stderr


def test_the_public_names() -> None:
    pytest.importorskip("keras")
    import registrum_keras

    assert registrum_keras.__all__ == ["RegistrumCallback", "load_model"]
