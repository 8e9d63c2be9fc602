# Switchboard — the two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE ?= config.settings.local
# The dashboard's browser tests drive this Chromium (Debian's package); without it they are
# skipped with a notice, unless SWITCHBOARD_REQUIRE_BROWSER=1 (CI) makes that a failure.
CHROMIUM ?= /usr/bin/chromium

.PHONY: run run-daphne test lint typecheck pytest install migrate worker beat bench clean chromium peers

$(BIN)/python:
	@echo "==> Creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# requirements.lock holds every package's exact version: pip takes it as constraints, so
# each machine gets the same environment (a package it does not list installs as usual).
# What `make run` needs: Switchboard and what it runs on, nothing for development.
$(VENV)/.runtime: pyproject.toml requirements.lock | $(BIN)/python
	@echo "==> Installing Switchboard and what it needs to run into $(VENV) (requirements.lock)"
	$(BIN)/python -m pip install --progress-bar off -c requirements.lock -e .
	@touch $@

# `make test` needs the development tools and the SDK (with Pipecat) too.
$(VENV)/.installed: pyproject.toml requirements.lock sdk/python/pyproject.toml | $(BIN)/python
	@echo "==> Installing Switchboard, its Python SDK (with Pipecat) and the development tools into $(VENV) (requirements.lock)"
	$(BIN)/python -m pip install --quiet -c requirements.lock -e ".[dev]" -e "sdk/python[pipecat]"
	@touch $@ $(VENV)/.runtime

# After a change to pyproject.toml's dependencies: resolve them without the old lock
# (what is installed and still fits stays) and write requirements.lock from the result.
.PHONY: lock
lock: | $(BIN)/python
	@echo "==> Resolving pyproject.toml in $(VENV) and writing requirements.lock"
	$(BIN)/python -m pip install --quiet -e ".[dev]" -e "sdk/python[pipecat]"
	@{ echo "# Every package of Switchboard's environment (pyproject.toml with [dev], sdk/python with [pipecat]), exactly as"; \
	  echo "# CI and the developers' machines install it: \`make install\` gives this file to pip as"; \
	  echo "# constraints. Made on Linux with Python 3.11. Not edited by hand: change"; \
	  echo "# pyproject.toml, then \`make lock\` resolves it again and rewrites this file."; \
	  $(BIN)/python -m pip freeze --exclude-editable; } > requirements.lock
	@touch $(VENV)/.installed

install: $(VENV)/.installed

migrate: $(VENV)/.runtime
	@echo "==> Migrating the database"
	$(BIN)/python manage.py migrate --noinput

# One process serves everything: uvicorn with Switchboard's media protocol (the lean path
# for audio frames) and httptools, the same server as the production media processes.
run: migrate
	@$(BIN)/python manage.py bootstrap_demo --base-url http://$(HOST):$(PORT)
	@echo "==> Serving API, media sockets, admin and dashboard on http://$(HOST):$(PORT) (Ctrl-C stops)"
	$(BIN)/uvicorn --host $(HOST) --port $(PORT) --loop uvloop --http httptools \
	  --ws config.media_server:MediaWebSocketProtocol --ws-per-message-deflate false \
	  --ws-max-size 131072 --lifespan on --proxy-headers config.asgi:application

# The same application on Daphne, as before (the README's Daphne deployments).
run-daphne: migrate
	@$(BIN)/python manage.py bootstrap_demo --base-url http://$(HOST):$(PORT)
	@echo "==> Serving API, media sockets, admin and dashboard with Daphne on http://$(HOST):$(PORT) (Ctrl-C stops)"
	$(BIN)/daphne --bind $(HOST) --port $(PORT) --proxy-headers --websocket-max-message-size 131072 config.asgi:application

lint: install
	@echo "==> ruff"
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	@echo "==> mypy"
	$(BIN)/mypy .

pytest: install
	@echo "==> pytest"
	@test -x $(CHROMIUM) || echo "==> NOTE: no Chromium at $(CHROMIUM): the dashboard's browser tests will be SKIPPED. 'make chromium' installs it (Debian, as root)."
	@{ command -v baresip && command -v sipp; } >/dev/null || echo "==> NOTE: no baresip or sipp: the SIP carrier's tests against real peers will be SKIPPED. 'make peers' installs them (Debian, as root)."
	DJANGO_SETTINGS_MODULE=config.settings.test SWITCHBOARD_CHROMIUM=$(CHROMIUM) $(BIN)/pytest $(PYTEST_ARGS)

# Debian's Chromium for the browser tests (never a browser downloaded by Playwright).
chromium:
	@if [ -x $(CHROMIUM) ]; then echo "==> Chromium is installed: $$($(CHROMIUM) --version)"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	else echo "==> Install Chromium as root: sudo apt-get install -y chromium"; exit 1; fi

# Debian's baresip and SIPp: the real SIP peers of the SIP trunk carrier's tests.
peers:
	@if command -v baresip >/dev/null && command -v sipp >/dev/null; then \
	  echo "==> $$(baresip -h 2>&1 | head -n 1)"; echo "==> $$(sipp -v 2>&1 | grep -m 1 -o 'SIPp.*')"; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q baresip-core sip-tester; \
	else echo "==> Install the SIP test peers as root: sudo apt-get install -y baresip-core sip-tester"; exit 1; fi

test: lint typecheck pytest

worker: install
	$(BIN)/celery -A config worker --loglevel INFO

beat: install
	$(BIN)/celery -A config beat --loglevel INFO

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
