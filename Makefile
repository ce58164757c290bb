# The front door: `make run` and `make test` work on a fresh clone.
# They create .venv and install the pinned requirements on first use.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: run test bench audit synth clean

$(STAMP): requirements.txt runtime/requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	@touch $@

## run: the real Lambda handler on the fixture packets, against moto's server on 127.0.0.1
run: $(STAMP)
	$(PY) -m sandbox.run $(ARGS)

## test: unit, integration (moto) and infrastructure (CDK synth) tests
test: $(STAMP)
	$(PY) -m pytest

clean:
	rm -rf $(VENV) out cdk.out .pytest_cache

## bench: large sales_order packets through the real processing path, against pyarrow and pandas
bench: $(STAMP)
	$(PY) -m sandbox.bench $(ARGS)

## audit: known vulnerabilities in the Lambda's pinned dependencies (needs PyPI's JSON API)
audit: $(STAMP)
	$(VENV)/bin/pip-audit -r runtime/requirements.txt --progress-spinner off --strict
