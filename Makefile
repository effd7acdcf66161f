# Two commands on a fresh machine: `make run` (the suites against a fresh sandbox) and
# `make test` (the project's own tests, lint and type checks). Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean mutate mutate-smoke

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Bytecode for the project's own modules, refreshed before every target (a no-op when it is
# current): an editable install gets none, and where PYTHONDONTWRITEBYTECODE is set (CI
# runners, often) Python never writes it, so every harness process, xdist worker and sandbox
# would compile them from source again (~0.04 s of CPU each, docs/performance.md).
BYTECODE := $(BIN)/python -m compileall -q harness fixtures sandbox

run: $(STAMP)
	$(BYTECODE)
	$(BIN)/harness run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy harness fixtures suites sandbox tests bench

test: lint typecheck
	$(BYTECODE)
	$(BIN)/pytest -c tests/pytest.ini tests $(ARGS)
	$(BIN)/python tests/mutate.py --smoke

# Mutation testing of the safety layers (docs/testing.md): a score per module, survivors with
# file:line; fails under 0.90. The smoke (in `make test`) mutates the ownership gate alone.
mutate: $(STAMP)
	$(BIN)/python tests/mutate.py $(ARGS)

mutate-smoke: $(STAMP)
	$(BIN)/python tests/mutate.py --smoke

bench: $(STAMP)
	$(BYTECODE)
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) .harness .mypy_cache .ruff_cache .pytest_cache harness-report.json mutants mutants.log
	find harness fixtures sandbox -name __pycache__ -type d -prune -exec rm -rf {} +
