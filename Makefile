# Two commands on a fresh machine: `make run` (the suites against a fresh sandbox) and
# `make test` (the project's own tests, lint and type checks). Both create .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint typecheck unit bench clean kafka-jars mutate mutate-smoke simulate browser

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

# The Kafka sandbox's jars (`--bus kafka`): Apache Kafka and Apicurio Registry from Maven Central,
# by the pinned files in sandbox/kafka/, into ~/.cache/env-harness (once; the sandbox would
# otherwise fetch them on its first Kafka start). Needs java and mvn.
kafka-jars: $(STAMP)
	$(BIN)/python -m harness.sandbox.kafka.jars

# The browser the HTML report's test loads it in (tests/e2e/test_html_in_browser.py): headless
# Chromium and its WebDriver from Debian's packages, installed once where they are missing (as
# root; elsewhere the browser tests skip with a line saying so, never under CI=true).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; \
		else echo "make browser: no chromium here and no apt-get as root: the browser tests will skip (install chromium and chromium-driver)"; fi; \
	fi

run: $(STAMP)
	$(BYTECODE)
	$(BIN)/harness run $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy harness fixtures suites sandbox tests bench

# Tests fetch the Kafka jars first where java and mvn exist; elsewhere the Kafka tests skip
# with a line saying what to install (never under CI=true: there they fail).
test: lint typecheck browser
	@if command -v java >/dev/null && command -v mvn >/dev/null; then \
		$(BIN)/python -m harness.sandbox.kafka.jars; \
	else echo "make test: no java/mvn here: the Kafka tests will skip (install Java 17 and Maven)"; fi
	$(BYTECODE)
	$(BIN)/python tests/mutate.py --smoke
	$(BIN)/pytest -c tests/pytest.ini tests -n 2 $(ARGS)

# Mutation testing of the safety layers (docs/testing.md): a score per module, survivors with
# file:line; fails under 0.90. The smoke (in `make test`) mutates the ownership gate alone.
mutate: $(STAMP)
	$(BIN)/python tests/mutate.py $(ARGS)

mutate-smoke: $(STAMP)
	$(BIN)/python tests/mutate.py --smoke

# The fault simulation of the run lifecycle (docs/testing.md): real `harness run` processes
# against one sandbox, one fault (signals, a full disk, dropped connections) at one phase
# each, every invariant checked after every scenario; exit 1 on any violation. ARGS=--quick
# runs a bounded slice, ARGS="--only ID@SEED" replays one scenario, ARGS=--list lists them;
# ARGS="--bus kafka" runs on a Kafka sandbox (needs java and mvn; the jars of kafka-jars).
simulate: $(STAMP)
	$(BYTECODE)
	$(BIN)/python -m tests.simulate $(ARGS)

bench: $(STAMP)
	$(BYTECODE)
	$(BIN)/python bench/run_all.py $(ARGS)

clean:
	rm -rf $(VENV) .harness .mypy_cache .ruff_cache .pytest_cache harness-report.json mutants mutants.log
	find harness fixtures sandbox -name __pycache__ -type d -prune -exec rm -rf {} +
