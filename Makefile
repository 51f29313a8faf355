# improv-annotate: the two commands of the README, and what they need.
#   make demo   set everything up, start the local stack, run the whole path on the example
#   make test   set everything up and run the test suite (with PostgreSQL, see below)
PYTHON ?= python3
VENV := .venv
LS_VENV := .venv-ls
# Label Studio is pinned to the version whose behaviour the project relies on (see the README).
LABEL_STUDIO_VERSION := 1.23.2

.PHONY: setup demo test down lint bench system-demo system-test

system-demo:
	@bash scripts/system-deps.sh demo

system-test:
	@bash scripts/system-deps.sh test

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e '.[dev]'
	touch $@

# Label Studio lives in a virtual environment of its own: its pins are its own business.
$(LS_VENV)/.installed:
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/pip install --quiet --upgrade pip
	$(LS_VENV)/bin/pip install --quiet label-studio==$(LABEL_STUDIO_VERSION)
	touch $@

setup: $(VENV)/.installed $(LS_VENV)/.installed

demo: system-demo setup
	$(VENV)/bin/improv-annotate demo

# PostgreSQL: the server at IMPROV_TEST_PG (default 127.0.0.1:5432, database test) when it
# answers, else a private cluster made for the run and removed after (scripts/with-postgres.sh).
test: system-test setup
	$(VENV)/bin/ruff check .
	bash scripts/with-postgres.sh $(VENV)/bin/pytest

down:
	$(VENV)/bin/improv-annotate down

lint:
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
