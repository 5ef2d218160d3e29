# chalice-http-toolkit: `make test` installs everything it needs and runs the suite.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.txt | sha256sum | cut -c1-12)

.PHONY: test lint format demo bench bin_magic system-deps clean

$(STAMP): requirements-dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

# libmagic is a system library: install it when the machine lacks it.
system-deps:
	@if ! ldconfig -p 2>/dev/null | grep -q 'libmagic.so.1'; then \
		echo "installing libmagic1"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libmagic1; \
	fi

test: $(STAMP) system-deps
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

demo: $(STAMP)
	$(PY) cli.py setup -n demo -p build/demo --force
	@echo "Serving the demo site on http://127.0.0.1:8000/"
	cd build/demo && ../../$(VENV)/bin/chalice local --host 127.0.0.1 --port 8000

# Regenerate bin_magic/ from the pylibmagic wheels and verify SHA256SUMS.
bin_magic:
	$(PYTHON) bin_magic/build.py

clean:
	rm -rf $(VENV) build .pytest_cache .ruff_cache .hypothesis
