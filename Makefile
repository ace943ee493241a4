# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-integration test-e2e test-faults token bench clean cleanup fire

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: the whole local stack in the foreground (Ctrl-C stops it)
run: $(STAMP)
	$(PY) -m devstack run

## test: every test: unit, integration (moto), e2e (the real stack in a subprocess)
# Separate pytest processes: in-process moto servers must not share a process with each other's state.
test: $(STAMP)
	$(PY) -m pytest tests/unit
	$(PY) -m pytest tests/integration/devstack
	$(PY) -m pytest tests/integration/app
	$(PY) -m pytest tests/integration/faults
	$(PY) -m pytest tests/e2e

## test-faults: the fault suite alone (every consumer under every fault; a few minutes)
test-faults: $(STAMP)
	$(PY) -m pytest tests/integration/faults

## token USER=name: an ID token for a local user of the running stack
token: $(STAMP)
	@$(PY) -m devstack token $(or $(USER_NAME),$(USER))

## fire SCHEDULE=name [AT=iso]: run a schedule now on the running stack
fire: $(STAMP)
	$(PY) -m devstack fire $(SCHEDULE) $(if $(AT),--at $(AT))

## cleanup [NOW=iso]: run the hourly cleanup on the running stack now, as if at NOW (default: now)
cleanup: $(STAMP)
	$(PY) -m devstack fire cleanup $(if $(NOW),--at $(NOW))

## bench: the benchmarks (they print their figures)
bench: $(STAMP)
	$(PY) bench/cold_start.py
	$(PY) bench/load_levelling.py
	$(PY) bench/renditions.py
	$(PY) bench/import.py

clean:
	rm -rf $(VENV) .devstack .pytest_cache
