# chalice-http-toolkit: `make test` installs everything it needs and runs the suite.
PYTHON ?= python3
comma := ,
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt | sha256sum | cut -c1-12)

.PHONY: test e2e lint format demo bench bench-venv bench-previous cdn-sim cost bin_magic system-deps browser-deps clean tools matrix

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# libmagic is a system library, node runs the CloudFront Function in the tests: install
# them when the machine lacks them.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libmagic.so.1'; then \
		echo "installing libmagic1"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmagic1; \
	fi
	@if ! command -v node >/dev/null 2>&1; then \
		echo "installing nodejs"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs; \
	fi

# Tools: tox, and the Lambda Runtime Interface Emulator from the aws-sam-cli wheel (its
# files only, no dependencies), which tests/test_lambda_runtime.py finds in $(TOOLS_VENV).
# A clean venv, aws-sam-cli last: pip checks dependencies only of what it installs, so no
# "dependency resolver" ERROR about the dependencies left out on purpose.
TOOLS_VENV ?= .venv-tools
TOOLS_STAMP := $(TOOLS_VENV)/.installed-$(shell cat requirements-tools.txt requirements-rie.txt | sha256sum | cut -c1-12)

$(TOOLS_STAMP): requirements-tools.txt requirements-rie.txt
	$(PYTHON) -m venv --clear $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r requirements-tools.txt
	$(TOOLS_VENV)/bin/python -m pip install --quiet --no-deps -r requirements-rie.txt
	touch $@

tools: $(TOOLS_STAMP)

# The suite under every Python Lambda runs (tox.ini). The interpreters come from pyenv;
# one that is missing fails its environment by name.
MATRIX_PYTHONS ?= 3.10 3.11 3.12 3.13
PYENV_ROOT ?= $(HOME)/.pyenv
MATRIX_PATH := $(subst $(eval) ,:,$(foreach v,$(MATRIX_PYTHONS),$(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/$(v).*/bin)))))

matrix: $(TOOLS_STAMP) system-deps
	@for v in $(MATRIX_PYTHONS); do \
		ls -d $(PYENV_ROOT)/versions/$$v.*/bin >/dev/null 2>&1 || echo "matrix: Python $$v is not installed in $(PYENV_ROOT)/versions"; \
	done
	PATH="$(MATRIX_PATH):$$PATH" $(TOOLS_VENV)/bin/tox run -e $(subst $(eval) ,$(comma),$(foreach v,$(MATRIX_PYTHONS),py$(subst .,,$(v))))

# RIE_REQUIRED=1: a missing emulator fails the Lambda runtime tier instead of skipping it.
test: $(STAMP) $(TOOLS_STAMP) system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	RIE_REQUIRED=1 $(PY) -m pytest -m "not e2e"

# Browser tests: Debian's Chromium driven by Playwright (which downloads no browser here).
E2E_STAMP := $(VENV)/.e2e-$(shell cat requirements-dev.txt requirements-e2e.txt | sha256sum | cut -c1-12)

$(E2E_STAMP): $(STAMP) requirements-e2e.txt
	$(PY) -m pip install --quiet -r requirements-e2e.txt
	touch $@

# Debian's browser binary (not the /usr/bin/chromium launcher script); installed when missing.
CHROMIUM ?= /usr/lib/chromium/chromium

browser-deps:
	@if [ ! -x "$(CHROMIUM)" ]; then \
		echo "installing chromium ($(CHROMIUM) is missing)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; \
	fi

# E2E_REQUIRED=1: a missing browser fails instead of skipping. Artifacts: build/e2e-artifacts/.
e2e: $(E2E_STAMP) system-deps browser-deps
	CHROMIUM="$(CHROMIUM)" E2E_REQUIRED=1 $(PY) -m pytest -m e2e tests/e2e --durations=3

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

# The demo site in build/demo under `chalice local`, until Ctrl-C: on port 8000, or a free
# one when 8000 is taken (PORT=8080 asks for one). Once you edit build/demo it is kept as it
# is (the command says so); FRESH=1 starts it over from the scaffold.
demo: $(STAMP)
	@$(PY) cli.py demo -p build/demo $(if $(PORT),--port $(PORT)) $(if $(FRESH),--fresh)

# A benchmark, not a test: our module against chalice-http-toolkit 0.6.2 (PyPI), whose
# package name clashes with our module, so it lives in its own venv. Writes bench/results.json.
BENCH_VENV ?= .venv-bench
BENCH_STAMP := $(BENCH_VENV)/.installed-$(shell cat requirements-dev.txt bench/requirements.txt | sha256sum | cut -c1-12)

$(BENCH_STAMP): requirements-dev.txt bench/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -r requirements-dev.txt -r bench/requirements.txt
	touch $@

bench-venv: $(BENCH_STAMP)

bench: $(BENCH_STAMP) $(TOOLS_STAMP) system-deps
	$(BENCH_VENV)/bin/python bench/run.py
	TOOLS_VENV=$(TOOLS_VENV) $(BENCH_VENV)/bin/python bench/peers.py
	$(BENCH_VENV)/bin/python bench/cdn_sim.py
	$(BENCH_VENV)/bin/python bench/images_memory.py

# This module against an earlier revision of itself, side by side in one process
# (bench/previous.py): REV=<commit>, by default the commit before HEAD.
REV ?= HEAD~1
bench-previous: $(STAMP)
	$(PY) bench/previous.py $(REV)

# Origin load behind the CloudFront model (bench/cdn_model.py), ours vs 0.6.2: bench/cdn_results.json.
cdn-sim: $(BENCH_STAMP) system-deps
	$(BENCH_VENV)/bin/python bench/cdn_sim.py

# Dollars per million page views behind CloudFront per front door (REST API, HTTP API,
# Function URL), ours vs 0.6.2, from the CDN simulation's figures and AWS's list prices.
# Runs the simulation first when bench/cdn_results.json is missing or predates the report.
cost:
	@$(PYTHON) bench/cost.py || { echo "cost: running make cdn-sim first"; $(MAKE) cdn-sim && $(PYTHON) bench/cost.py; }

# Regenerate bin_magic/ from the pylibmagic wheels and verify SHA256SUMS.
bin_magic:
	$(PYTHON) bin_magic/build.py

clean:
	rm -rf $(VENV) $(TOOLS_VENV) build .pytest_cache .ruff_cache .hypothesis
