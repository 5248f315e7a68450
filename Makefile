# Marketing Pilot connectors. `make demo` and `make test` are the two commands a newcomer runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install services lint typecheck test demo bench reliability clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

services: install
	$(BIN)/python -m shared.service_check

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy

# Two processes (each test has its own databases and Redis db), then the tests bounded by time alone.
test: lint typecheck services
	$(BIN)/pytest -n 2 --dist loadfile -m "not serial"
	$(BIN)/pytest -m serial

demo: services
	$(BIN)/pilot demo

bench: services
	@for script in tests/benchmarks/bench_*.py; do \
		echo "== $$script"; $(BIN)/python $$script || exit 1; \
	done

# The reliability scenarios at the issue's full sizes (make test runs their short versions).
reliability: services
	PILOT_RELIABILITY=full $(BIN)/pytest tests/reliability -p no:cacheprovider

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
