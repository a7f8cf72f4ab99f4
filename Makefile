# Two commands for a new user: `make demo` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo demo-serve test lint typecheck unit bench up clean histories browser prometheus

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@# OPA's own Go evaluator as a test oracle for the Rego bundle (engine parity). Its metadata asks for
	@# Python 3.14 but the wheel is a ctypes binding that runs on 3.11; without it those tests skip, saying so.
	$(BIN)/python -m pip install --quiet --ignore-requires-python 'opa-golib-python-bindings==0.4.4' \
		|| echo "note: opa-golib-python-bindings unavailable here; OPA-parity tests will skip"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/twinops demo

# The demo, then the stack and the web UI stay up with one proposal waiting for approval in the browser.
demo-serve: $(STAMP)
	$(BIN)/twinops demo --serve

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy twinops twin agents workflows controller tests benchmarks

# One pytest worker per core (at most 4): most tests wait on Temporal timers and the dev server, so two
# workers on this two-core machine halve the run (18.7 -> 10.2 min).
unit: $(STAMP)
	$(BIN)/python -m pytest -n auto --maxprocesses=4

# The browser tests drive Debian's chromium, never a downloaded browser: installed here when missing and
# we are root; otherwise those tests skip, naming the package.
browser:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
				|| echo "note: apt-get could not install chromium; browser tests will skip"; \
		else echo "note: /usr/bin/chromium missing (Debian package chromium); browser tests will skip"; fi; }

# Prometheus (with promtool) and Alertmanager for the telemetry tests: Debian packages, installed here when
# missing and we are root; otherwise those tests skip, naming the package. Never a downloaded binary.
prometheus:
	@missing=""; \
	test -x /usr/bin/prometheus && test -x /usr/bin/promtool || missing="prometheus"; \
	test -x /usr/bin/prometheus-alertmanager || missing="$$missing prometheus-alertmanager"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
			(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null) \
				|| echo "note: apt-get could not install $$missing; their tests will skip"; \
		else echo "note: Debian package(s) $$missing missing; their tests will skip"; fi; \
	fi

test: lint typecheck browser prometheus unit

# Capture this release's replay histories (tests/workflows/histories/<version>/); earlier releases' stay frozen.
histories: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/workflows/capture_histories.py

# Holt-Winters (statsmodels) is only the forecast benchmark's comparison: installed here, not for `make test`.
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]' || echo "note: statsmodels unavailable; Holt-Winters is not measured"
	$(BIN)/python -m benchmarks

up: $(STAMP)
	$(BIN)/twinops up

clean:
	rm -rf $(VENV) .twinops .mypy_cache .pytest_cache .ruff_cache
