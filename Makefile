# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench install system-deps postgres migration-initial clean

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11) and "certdesk needs Python 3.11")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

## run the service (Telegram, e-mail, staff robots: whatever is configured), else a local chat
run: $(STAMP)
	$(BIN)/certdesk db upgrade
	$(BIN)/certdesk run

## run the whole test suite (installs Dovecot, starts PostgreSQL when it is down)
test: $(STAMP) system-deps postgres
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy bot handlers storage messages
	$(BIN)/python -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: $(STAMP) system-deps postgres
	for b in bench/*.py; do $(BIN)/python $$b || exit 1; done

# Dovecot for the IMAP tests; faketime (libfaketime) to step a service's wall clock in a test.
system-deps:
	@{ command -v dovecot && command -v faketime; } >/dev/null || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq dovecot-core dovecot-imapd \
	    faketime >/dev/null; }
	@# The console's browser tests drive Debian's Chromium (no browser download); CJK fonts for
	@# readable Chinese in screenshots.
	@{ command -v chromium >/dev/null && [ -d /usr/share/fonts/opentype/noto ]; } || { \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null; }

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || { \
	  pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start && \
	  for i in $$(seq 50); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 0.2; done; }

## regenerate the initial migration from the models (only while nothing is deployed)
migration-initial: $(STAMP)
	$(BIN)/python -m storage.regen_initial

clean:
	rm -rf $(VENV) data .pytest_cache
