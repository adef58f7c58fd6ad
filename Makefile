# agentstream: `make demo` runs the whole pipeline on the embedded default; `make test` tests it.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install demo up test test-unit test-integration lint screenshots codegen bench clean

# Quiet unless something is wrong: pip -q, and .ci/pip-quiet.sh drops the one warning this
# machine's pip configuration repeats for every package (its exit status is pip's).
$(STAMP): pyproject.toml setup.py
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@sh .ci/pip-quiet.sh $(BIN)/python -m pip install -q --disable-pip-version-check --upgrade pip
	@sh .ci/pip-quiet.sh $(BIN)/python -m pip install -q --disable-pip-version-check -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/agentstream demo

up: $(STAMP)
	$(BIN)/agentstream up

# Chromium for the browser tests: installed when it can be, else one line says how and they skip.
# Six workers, one test file each at a time (module fixtures start stacks once): most
# integration tests wait on consumer-group joins, broker restarts and kill loops (each worker
# spent ~200 s of CPU in ~800 s of tests at 4), so 6 overlap them better even on 2 cores: the
# suite took 785 s at 6 against 957 s at 4 on the same loaded machine.
# TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 6
test: $(STAMP)
	@AGENTSTREAM_BROWSER_TESTS=$$(sh .ci/ensure-chromium.sh) $(BIN)/python -m pytest -q -p no:cacheprovider \
		-n $(TEST_WORKERS) --dist loadfile

test-unit: $(STAMP)
	$(BIN)/python -m pytest -q tests/unit tests/contract

test-integration: $(STAMP)
	$(BIN)/python -m pytest -q tests/integration

# ruff and mypy (pyproject.toml [tool.ruff], [tool.mypy]); `make test` runs the same test.
lint: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/unit/ci/test_lint_and_types.py

# The README's screenshots (from what `make demo` produces) and the dashboard pages' (from the
# browser tests), in Debian's chromium.
screenshots: $(STAMP)
	$(BIN)/python docs/screenshots/demo_screenshots.py
	AGENTSTREAM_BROWSER_TESTS=$$(sh .ci/ensure-chromium.sh) AGENTSTREAM_SCREENSHOT_DIR=$(CURDIR)/docs/screenshots \
		$(BIN)/python -m pytest -q -p no:cacheprovider tests/browser

codegen: $(STAMP)
	$(BIN)/python -m agentstream.schemas.codegen

bench: $(STAMP)
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .agentstream build *.egg-info
