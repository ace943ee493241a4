# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test test-unit test-integration test-e2e token bench clean cleanup fire traces traces-ui

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
	$(PY) -m pytest tests/e2e

## token USER=name: an ID token for a local user of the running stack
token: $(STAMP)
	@$(PY) -m devstack token $(or $(USER_NAME),$(USER))

## fire SCHEDULE=name [AT=iso]: run a schedule now on the running stack
fire: $(STAMP)
	$(PY) -m devstack fire $(SCHEDULE) $(if $(AT),--at $(AT))

## cleanup [NOW=iso]: run the hourly cleanup on the running stack now, as if at NOW (default: now)
cleanup: $(STAMP)
	$(PY) -m devstack fire cleanup $(if $(NOW),--at $(NOW))

## traces [FILTER='order_id = "..."'] [TRACE=id] [MINUTES=60] [AWS_PROFILE=p]: recent traces and cost per
## function in the terminal, or one trace as a timeline (the running local stack; a real account only
## with AWS_PROFILE=p on the command line, never from an exported AWS_PROFILE)
traces: $(STAMP)
	@$(PY) -m devstack traces $(if $(FILTER),--filter '$(FILTER)') $(if $(TRACE),--trace $(TRACE)) \
		$(if $(MINUTES),--minutes $(MINUTES)) \
		$(if $(filter command line,$(origin AWS_PROFILE)),--profile $(AWS_PROFILE))

## traces-ui AWS_PROFILE=p [TRACE_PORT=8001]: the trace viewer alone, reading a real account's X-Ray
traces-ui: $(STAMP)
	$(PY) -m devstack traces-ui $(if $(AWS_PROFILE),--profile $(AWS_PROFILE)) $(if $(TRACE_PORT),--port $(TRACE_PORT))

## bench: the benchmarks (they print their figures)
bench: $(STAMP)
	$(PY) bench/cold_start.py
	$(PY) bench/load_levelling.py
	$(PY) bench/renditions.py
	$(PY) bench/import.py

clean:
	rm -rf $(VENV) .devstack .pytest_cache
