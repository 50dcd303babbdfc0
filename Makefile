# qr-checkin: the newcomer's commands are `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# The venv sees apt's packages (--system-site-packages) on a Raspberry Pi, for python3-picamera2, and
# on 32-bit Arm, where numpy and PyNaCl come from apt (PyPI has no wheels for them there); SYSTEM_SITE=1
# asks for it anywhere else, SYSTEM_SITE=0 never. Changing it re-makes the venv's configuration.
ON_PI := $(shell grep -qas 'Raspberry Pi' /proc/device-tree/model && echo 1)
ARM32 := $(filter armhf armel,$(shell dpkg --print-architecture 2>/dev/null))
SYSTEM_SITE ?= $(if $(ON_PI)$(ARM32),1,0)
# 32-bit Arm installs the device's tests alone: the collector's extra and Playwright have no armv7
# wheels (jsonschema-rs needs a Rust toolchain), and the collector never runs on a Pi.
EXTRAS ?= $(if $(ARM32),test-device,test)
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)-site$(SYSTEM_SITE)-$(EXTRAS)

.PHONY: setup system-packages mosquitto postgresql chromium rabbitmq run test test-arm lint bench chaos clean

# The collector's servers and the browser only where its tests run (not on 32-bit Arm, as EXTRAS).
setup: $(STAMP) mosquitto $(if $(ARM32),,postgresql chromium rabbitmq)

# apt's part (when root): build tools, systemd-analyze and setuptools/wheel for the tests, numpy and
# PyNaCl on 32-bit Arm; see scripts/system_packages.sh.
system-packages:
	@bash scripts/system_packages.sh --test --install

$(STAMP): pyproject.toml | system-packages
	$(PYTHON) -m venv $(if $(filter 1,$(SYSTEM_SITE)),--system-site-packages) $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[$(EXTRAS)]'
	@# The chaos harness's clock jumps need libfaketime built for this CPU (the wheel's is x86-64).
	@$(PY) -m bench.faketime || echo "make chaos will skip its clock jumps (see above)"
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

# The collector's tests start their own PostgreSQL server in a temporary directory (as the `postgres`
# user when root); it only has to be installed. No cluster of the package's own is created or started.
postgresql:
	@if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing postgresql with apt-get"; \
		mkdir -p /etc/postgresql-common/createcluster.d && \
		echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/qr-checkin.conf; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "postgresql is missing: sudo apt-get install postgresql (the collector's PostgreSQL tests need it)"; \
	fi

# The web page's tests drive Debian's Chromium through Playwright (which must not download a browser).
chromium:
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "chromium is missing: sudo apt-get install chromium (the web page's browser tests need it)"; \
	fi

# The cluster tests start their own three RabbitMQ nodes (MQTT plugin) under a temporary directory;
# Debian's package starts a node of its own on install: it is stopped and disabled again.
rabbitmq:
	@if [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing rabbitmq-server with apt-get"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq rabbitmq-server >/dev/null; \
		(systemctl disable --now rabbitmq-server || service rabbitmq-server stop) >/dev/null 2>&1 || true; \
	else \
		echo "rabbitmq-server is missing: sudo apt-get install rabbitmq-server (the cluster tests skip without it)"; \
	fi

run: setup
	$(PY) scripts/dev_run.py

test: setup
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check device provisioning collector tests scripts bench
	$(VENV)/bin/ruff format --check device provisioning collector tests scripts bench
	$(VENV)/bin/mypy

bench: setup
	$(PY) -m bench

chaos: setup
	$(PY) -m bench.chaos

# The suite on Arm, in a Debian bookworm root under qemu (root only, minutes to an hour; not part of
# `make test`): ARCH=armhf for 32-bit Raspberry Pi OS, PYTEST_ARGS to choose tests.
ARCH ?= arm64
test-arm:
	ARCH=$(ARCH) bash scripts/test_arm.sh $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

# On the Raspberry Pi: `sudo make install` (again to upgrade); `sudo make uninstall [PURGE=1]`.
.PHONY: install uninstall
install:
	bash scripts/install.sh

uninstall:
	bash scripts/uninstall.sh $(if $(PURGE),--purge)
