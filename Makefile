# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test typecheck test-faults token bench clean cleanup fire package deploy traces traces-ui

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

## run: the whole local stack in the foreground (Ctrl-C stops it)
run: $(STAMP)
	$(PY) -m devstack run

## test: every test: unit, docs (links, code references, diagrams), integration (moto), e2e (the real stack in a subprocess), contract (schemathesis)
# Separate pytest processes: in-process moto servers must not share a process with each other's state.
test: $(STAMP)
	$(PY) -m mypy
	$(PY) -m pytest tests/unit
	$(PY) -m pytest tests/docs
	$(PY) -m pytest tests/integration/devstack
	$(PY) -m pytest tests/integration/app
	$(PY) -m pytest tests/integration/faults
	$(PY) -m pytest tests/e2e
	$(PY) -m pytest tests/contract
	$(PY) -m pytest tests/deploy

## typecheck: mypy (strict on chalicelib/ and app.py; devstack/ and infra/ with the defaults: mypy.ini)
typecheck: $(STAMP)
	$(PY) -m mypy

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

## package [STAGE=dev|prod]: build/<stage>/template.json, the stack's CloudFormation template (cfn-lint clean)
STAGE ?= dev
AWS := $(VENV)/bin/aws
package: $(STAMP)
	$(PY) -m infra.package --stage $(STAGE)

## deploy STAGE=dev|prod DEPLOY_BUCKET=name: package, upload, deploy the stack storefront-<stage>, print its API URL
deploy: $(STAMP)
	@$(AWS) sts get-caller-identity >/dev/null 2>&1 || { echo "make deploy: no AWS credentials: 'aws sts get-caller-identity' failed. Configure them first (aws configure, or AWS_PROFILE=...)." >&2; exit 1; }
	@test -n "$(DEPLOY_BUCKET)" || { echo "make deploy: set DEPLOY_BUCKET to an S3 bucket you own in the target region (the code zip is uploaded there)." >&2; exit 1; }
	$(PY) -m infra.package --stage $(STAGE) --check-wheels
	$(AWS) cloudformation package --template-file build/$(STAGE)/template.json --s3-bucket $(DEPLOY_BUCKET) \
		--s3-prefix storefront-$(STAGE) --use-json --output-template-file build/$(STAGE)/packaged.json
	$(AWS) cloudformation deploy --template-file build/$(STAGE)/packaged.json --stack-name storefront-$(STAGE) \
		--capabilities CAPABILITY_IAM --no-fail-on-empty-changeset
	@echo "API: $$($(AWS) cloudformation describe-stacks --stack-name storefront-$(STAGE) \
		--query "Stacks[0].Outputs[?OutputKey=='EndpointURL'].OutputValue" --output text)"

clean:
	rm -rf $(VENV) .devstack .pytest_cache build
