# The front door: `make run` and `make test` work on a fresh clone.
# They create .venv and install the pinned requirements on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help run test bench audit synth replay clean lock deploy-local sandbox sandbox-stop diff destroy
.DEFAULT_GOAL := help

## help: this list (each target and what it does)
help:
	@awk '/^## [a-z-]+:/ { sub(/^## /, ""); split($$0, p, ": "); printf "  make %-14s %s\n", p[1], substr($$0, length(p[1]) + 3); last = "## "; next } \
	     /^## / && last ~ /^## / { sub(/^## /, ""); printf "  %-19s %s\n", "", $$0 } { last = $$0 }' $(MAKEFILE_LIST)

$(STAMP): requirements.txt runtime/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

## run: the real Lambda handler on the fixture packets, against moto's server on 127.0.0.1
run: $(STAMP)
	$(PY) -m sandbox.run $(ARGS)

## test: unit, integration (moto), warehouse and infrastructure (CDK synth) tests, on one worker more than the cores;
## the kill sweeps visit a fixed sample of their kill points here (all of them in `make reliability`)
# One worker more than the cores: workers wait on moto's server, CDK's node process and
# builds (3 workers on 2 cores: 3m45s against 4m17s with 2, 4m57s with 4, same run).
TEST_WORKERS ?= $(shell python3 -c 'import os; print(os.cpu_count() + 1)')
test: $(STAMP)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist worksteal $(ARGS)

# The CDK CLI, pinned in package.json / package-lock.json, installed into node_modules/.
NODE_STAMP := node_modules/.installed
CDK        := node_modules/.bin/cdk

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

## sandbox: `make run`, then moto's server stays up with the data, a dead-letter queue and a
## stand-in stack, and prints the `export` lines for the on-call commands (docs/operations.md)
sandbox: $(STAMP)
	$(PY) -m sandbox.run --keep $(ARGS)

## sandbox-stop: stop the server `make sandbox` left running
sandbox-stop: $(STAMP)
	$(PY) -m sandbox.run --stop

## synth: the CloudFormation template and the bundled Lambda asset in cdk.out/ (no AWS account, no Docker)
# No instance-metadata probing, notices or telemetry: synth needs nothing from AWS.
synth: $(STAMP) $(NODE_STAMP)
	AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true \
	$(CDK) synth --app "$(PY) app.py" --output cdk.out --no-notices --quiet $(CDK_ARGS)
	@ls -1 cdk.out/*.template.json

## diff: what a deploy would change: against the deployed stack (AWS credentials, CDK_ARGS="-c stage=prod"),
## or offline with TEMPLATE=<file> (the last synth's cdk.out/*.template.json, or tests/infra/snapshots/)
diff: $(STAMP) $(NODE_STAMP)
	AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true \
	$(CDK) diff --app "$(PY) app.py" --output cdk.out --no-notices $(if $(TEMPLATE),--template $(TEMPLATE)) $(CDK_ARGS)

## destroy: delete the stage's stack (asks first; CDK_ARGS="-c stage=prod"); the buckets, packet-id
## parameters, log group and dead-letter queue are retained: docs/deploy.md, "Teardown"
destroy: $(STAMP) $(NODE_STAMP)
	AWS_EC2_METADATA_DISABLED=true CDK_DISABLE_CLI_TELEMETRY=true \
	$(CDK) destroy --app "$(PY) app.py" --output cdk.out --no-notices $(CDK_ARGS)

## deploy-local: `cdk bootstrap` + `cdk deploy` against moto's server, then the deployed code,
## fetched back, run with Python 3.12 on the fixture packets against the deployed resources
deploy-local: $(STAMP) $(NODE_STAMP)
	$(PY) -m sandbox.deploy_local

clean:
	rm -rf $(VENV) out cdk.out .pytest_cache

## bench: large sales_order packets through the real processing path, against DuckDB, pyarrow and pandas;
## then a 1k-row packet's cost with 10 million remembered fact versions vs none, and the
## cold start of the built asset (import + one small event, Python 3.12, with and without bytecode)
bench: $(STAMP)
	$(PY) -m sandbox.bench $(ARGS)
	$(PY) -m sandbox.bench_history
	$(PY) -m sandbox.bench_rebuild
	$(PY) -m sandbox.cold_start

## rebuild: the fixture history (many packets) processed the live way, then the rebuild workflow's state
## machine run in moto's Step Functions interpreter into a new generation, with progress (docs/rebuild.md)
.PHONY: rebuild
rebuild: $(STAMP)
	$(PY) -m sandbox.rebuild $(ARGS)

## lock: pin every package of the Lambda asset for its platforms (after changing runtime/requirements.txt)
lock: $(STAMP)
	$(PY) -m cdk_app.bundling.lock

## audit: known vulnerabilities in the Lambda's pinned dependencies (needs PyPI's JSON API)
audit: $(STAMP)
	$(VENV)/bin/pip-audit -r runtime/requirements.txt --progress-spinner off --strict

## replay: ask for a replay of the open fact quarantine (STAGE=prod reads the stack; ARGS="--dry-run" or "--invoke")
replay: $(STAMP)
	$(PY) -m runtime.operations $(if $(STAGE),--stage $(STAGE)) replay $(ARGS)

## reliability: AWS faults at the handler's call sites, real process kills, a 1,000-event
## warm-container soak, all against moto's server, and every kill sweep at every write
## (`make test` samples them); not part of `make test`
SWEEPS := tests/unit/test_recovery.py tests/unit/test_recovery_warehouse.py tests/unit/test_recovery_replays.py \
          tests/integration/test_recovery_over_s3.py
# The longest tests first, so no worker is left alone with one at the end.
LONGEST_FIRST := tests/reliability/test_warm_container.py tests/reliability/test_process_kill.py \
                 tests/integration/test_recovery_over_s3.py tests/reliability/test_replay_properties.py \
                 tests/reliability/test_boundary_fuzz.py
# The long property runs' example counts are CI's times RELIABILITY_SCALE (tests/reliability/scale.py).
RELIABILITY_SCALE ?= 1
.PHONY: reliability
reliability: $(STAMP)
	KILL_SWEEP=full RELIABILITY_SCALE=$(RELIABILITY_SCALE) $(PY) -m pytest -n auto --dist worksteal $(LONGEST_FIRST) tests/reliability $(SWEEPS) $(ARGS)

## warehouse: `make run`, then its Parquet (out/) loaded packet by packet into a throwaway
## PostgreSQL 15 with warehouse/schema.sql and its foreign keys, and one analyst question
## answered per star (warehouse/questions/)
## (`make warehouse ARGS=--keep` keeps the cluster and prints its connection string)
.PHONY: warehouse
warehouse: run
	$(PY) -m sandbox.analysts out $(ARGS)

## query: `make query "SELECT ..."` (or a .sql file): DuckDB over `make run`'s out/ through
## the same views as Athena (Athena's dialect), printed as a table
.PHONY: query
ifeq (query,$(firstword $(MAKECMDGOALS)))
# The words after `query` are the SQL, not targets.
QUERY_SQL := $(wordlist 2,$(words $(MAKECMDGOALS)),$(MAKECMDGOALS))
%:
	@:
endif
query: $(STAMP)
	$(PY) -m sandbox.query '$(subst ','\'',$(QUERY_SQL))' $(ARGS)
