# qr-checkin: the newcomer's commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: setup mosquitto run test lint bench chaos clean

setup: $(STAMP) mosquitto

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	rm -f $(VENV)/.installed-* && touch $@

# The tests start their own mosquitto on a free loopback port; it only has to be installed.
mosquitto:
	@if command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing mosquitto with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto mosquitto-clients >/dev/null; \
	else \
		echo "mosquitto is missing: sudo apt-get install mosquitto mosquitto-clients (make run works offline without it)"; \
	fi

run: setup
	$(PY) scripts/dev_run.py

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check device provisioning tests scripts bench
	$(VENV)/bin/ruff format --check device provisioning tests scripts bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

chaos: setup
	$(PY) -m bench.chaos

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# On the Raspberry Pi: `sudo make install` (again to upgrade); `sudo make uninstall [PURGE=1]`.
.PHONY: install uninstall
install:
	bash scripts/install.sh

uninstall:
	bash scripts/uninstall.sh $(if $(PURGE),--purge)
