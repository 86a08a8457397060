# Two commands from a fresh clone:
#   make demo   install the client and server, then train, track and register a small model
#               on the embedded store
#   make test   install everything, then run every test (a skipped test fails the run)
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup chromium vendor-ui demo test postgres lint bench clean mlflow-compat

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# `make demo` needs the client, the embedded store and the server behind `registrum ui`.
$(VENV)/.demo: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e ".[server]"
	touch $@

# Everything: every framework and the test tools. Torch first, so that the ranges in the
# extras keep its CPU build instead of pulling a CUDA one.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[all,dev]"
	touch $@

# The web UI's browser tests drive Debian's chromium (never a downloaded browser).
chromium:
	@command -v chromium >/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null)

# The SSO tests' OpenID Connect provider: npm's oidc-provider, run by node (tests/sso).
# Installed again only when its lock file changes.
SSO_PROVIDER := tests/sso/provider
$(SSO_PROVIDER)/node_modules/.installed: $(SSO_PROVIDER)/package.json $(SSO_PROVIDER)/package-lock.json
	npm ci --prefix $(SSO_PROVIDER) --no-audit --no-fund
	touch $@

setup: $(VENV)/.installed $(SSO_PROVIDER)/node_modules/.installed

# Copies the front-end libraries of the UI and /docs (uPlot, Swagger UI) from npm into the
# package (needs npm; the copies are committed, so nothing else needs npm).
vendor-ui:
	bash ui/vendor.sh

# The tests use the PostgreSQL server at 127.0.0.1:5432; start it if it is down.
postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -1) main start
	@for i in $$(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; \
	  echo "PostgreSQL did not start" >&2; exit 1

demo: $(VENV)/.demo
	$(BIN)/registrum demo

# Everything is installed, so nothing may skip: a skip fails the run (tests/no_skip.py).
test: setup chromium postgres
	$(BIN)/ruff check core packages tests bench examples
	REGISTRUM_TEST_NO_SKIP=1 $(BIN)/python -m pytest

lint: setup
	$(BIN)/ruff check core packages tests bench examples
	$(BIN)/ruff format --check core packages tests bench examples
	$(BIN)/mypy

bench: setup postgres
	for b in bench/bench_*.py; do $(BIN)/python $$b || exit 1; done

# MLflow's own REST tests (tests/tracking/test_rest_tracking.py and test_model_registry.py of
# MLflow's source at the pinned client's tag) against a fresh Registrum server per test; not
# part of `make test`. MLFLOW_SRC is a checkout of that tag (cloned there when missing);
# tests/mlflow_compat/README.md says what is deselected and why.
MLFLOW_VERSION ?= 3.17.2
MLFLOW_SRC ?= ../mlflow
MLFLOW_COMPAT_TESTS ?= tests/tracking/test_rest_tracking.py tests/tracking/test_model_registry.py
mlflow-compat: setup
	@test -f "$(MLFLOW_SRC)/tests/tracking/test_rest_tracking.py" || \
	  git clone --quiet --depth 1 --branch v$(MLFLOW_VERSION) https://github.com/mlflow/mlflow "$(MLFLOW_SRC)" || \
	  { echo "mlflow-compat: no MLflow source at $(MLFLOW_SRC), and cloning v$(MLFLOW_VERSION) failed;" \
	    "clone it yourself and pass MLFLOW_SRC=/path/to/mlflow" >&2; exit 2; }
	cd "$(MLFLOW_SRC)" && PYTHONPATH="$$PWD:$(CURDIR)/tests/mlflow_compat" \
	  "$(abspath $(BIN))/python" -m pytest -c "$(CURDIR)/tests/mlflow_compat/compat.ini" \
	  --rootdir . -q $(MLFLOW_COMPAT_TESTS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache
