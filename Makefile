# Switchboard — the two commands: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
export DJANGO_SETTINGS_MODULE ?= config.settings.local

.PHONY: run test lint typecheck pytest install migrate worker beat bench clean

$(BIN)/python:
	@echo "==> Creating $(VENV) with $(PYTHON)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "==> Installing Switchboard and its development tools into $(VENV)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

install: $(VENV)/.installed

migrate: install
	$(BIN)/python manage.py migrate --noinput

run: migrate
	@$(BIN)/python manage.py bootstrap_demo
	@echo "==> Serving API, media sockets, admin and dashboard on http://$(HOST):$(PORT) (Ctrl-C stops)"
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
	DJANGO_SETTINGS_MODULE=config.settings.test $(BIN)/pytest $(PYTEST_ARGS)

test: lint typecheck pytest

worker: install
	$(BIN)/celery -A config worker --loglevel INFO

beat: install
	$(BIN)/celery -A config beat --loglevel INFO

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
