# Fabula developer commands. `make run` and `make test` install what they need.
.DEFAULT_GOAL := help
SHELL := /bin/bash

UV_VERSION := 0.13.9
# A uv already on PATH is used as it is; otherwise a private copy is installed.
UV ?= $(shell command -v uv 2>/dev/null || echo $(CURDIR)/.tools/bin/uv)
PYTHON := .venv/bin/python
export UV_PYTHON_DOWNLOADS := never

.PHONY: help install run test proto proto-baseline bench superuser import-stories import-council

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

.tools/bin/uv:
	python3 -m venv .tools
	.tools/bin/pip install --quiet "uv==$(UV_VERSION)"

# Bytecode is compiled here, once: where PYTHONDONTWRITEBYTECODE is set (CI
# images often do) every process would otherwise compile every module it
# imports at each start, about 2 s of CPU per service.
install: $(if $(findstring .tools/,$(UV)),.tools/bin/uv) ## Create .venv with every package (uv workspace, locked)
	$(UV) sync --all-packages --frozen --quiet --compile-bytecode
	@$(PYTHON) -m compileall -q -j 0 gateway libs services >/dev/null

run: install ## Prepare the database and start the services and gateway (Ctrl-C stops all)
	@exec $(PYTHON) -m fabula_devtools.run

# Two workers, whole modules each (their stacks stay with them). Each worker
# starts a PostgreSQL cluster and stacks of its own; more workers than that
# gain little on two cores and multiply the processes.
TEST_WORKERS ?= 2
test: install ## Run the whole test suite (TEST_WORKERS=2 pytest-xdist workers)
	UV="$(UV)" $(PYTHON) -m pytest -n $(TEST_WORKERS) --dist loadfile

proto: install ## Regenerate the Python stubs from protos/
	$(PYTHON) scripts/gen_protos.py

proto-baseline: install ## Record protos/ as the released contracts that `make test` checks changes against (when a release is cut)
	.venv/bin/buf build protos --exclude-source-info -o protos/baseline.binpb

bench: install ## Run the benchmarks; figures go to bench/results/
	$(PYTHON) -m bench

superuser: install ## Make an existing account a superuser: make superuser EMAIL=ada@example.com
	@test -n "$(EMAIL)" || { echo "usage: make superuser EMAIL=<email>"; exit 2; }
	$(PYTHON) -m fabula_users.admin.cli superuser "$(EMAIL)"

# USER is also the login name in most shells: only a USER given on the
# command line counts.
IMPORT_USER := $(if $(filter command line,$(origin USER)),$(USER))
import-stories: install ## Import saved AI Story Generator stories: make import-stories USER=ada@example.com DIR=saved_stories
	@test -n "$(IMPORT_USER)" -a -n "$(DIR)" || { echo "usage: make import-stories USER=<email> DIR=<folder> [SOURCE=ai-story-generator]"; exit 2; }
	@.venv/bin/fabula import stories --email "$(IMPORT_USER)" --dir "$(DIR)" $(if $(SOURCE),--source "$(SOURCE)")

import-council: install ## Import the LLM council app's JSON folder: make import-council DIR=council_data [EMAIL=<owner of user-less conversations>]
	@test -n "$(DIR)" || { echo "usage: make import-council DIR=<folder> [EMAIL=<email>] [SOURCE=llm-council]"; exit 2; }
	@.venv/bin/fabula import council --dir "$(DIR)" $(if $(EMAIL),--email "$(EMAIL)") $(if $(SOURCE),--source "$(SOURCE)")
