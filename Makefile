# The two commands a newcomer needs: `make run` and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
# Lambda runs the functions on python3.13 (Amazon Linux 2023): the venv, the tests and CI run the
# same. PYTHON=/path/to/python3.13 overrides the search; otherwise the first of these that is 3.13.
PYTHON_CANDIDATES = $(PYTHON) python3.13 $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python3.13) \
	/usr/local/bin/python3.13 /opt/homebrew/bin/python3.13 python3
PYTHON_313 = $(firstword $(foreach p,$(PYTHON_CANDIDATES),$(shell $(p) -c \
	'import sys; sys.exit(sys.version_info[:2] != (3, 13))' >/dev/null 2>&1 && echo $(p))))
PYTHON_STAMP := $(VENV)/.python-3.13
# Stamps of what is installed in the venv: what running needs (requirements/run.txt), and every
# tool of the tests (requirements/dev.txt, a superset at the same versions). Both are hashed locks.
RUN_STAMP := $(VENV)/.installed-run
DEV_STAMP := $(VENV)/.installed-dev
# checkov in a venv of its own: its pins (boto3 1.35, packaging<24) cannot share ours.
CHECKOV := $(VENV)/checkov/bin/checkov
PIP_INSTALL = PIP_DISABLE_PIP_VERSION_CHECK=1 $(1) -m pip install --quiet --require-hashes --only-binary=:all: -r $(2)

.PHONY: run test typecheck test-faults token bench clean cleanup fire package deploy traces traces-ui lock mail rebuild-sales

$(PYTHON_STAMP):
	@if [ -x $(PY) ] && ! $(PY) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 13))' 2>/dev/null; then \
		echo "make: $(VENV) is not Python 3.13 (Lambda's runtime); making it anew"; rm -rf $(VENV); fi
	@python="$(PYTHON_313)"; if [ -z "$$python" ]; then \
		echo "make: Python 3.13 not found (tried: $(strip $(PYTHON_CANDIDATES))). The functions run on" >&2; \
		echo "  Lambda's python3.13, and so do the local stack and the tests. Install it, e.g.:" >&2; \
		echo "    pyenv install 3.13          (then make finds ~/.pyenv/versions/3.13.*/bin/python3.13)" >&2; \
		echo "    brew install python@3.13    (macOS)" >&2; \
		echo "    or https://www.python.org/downloads/; or point make at one: make run PYTHON=/path/to/python3.13" >&2; \
		exit 1; fi; \
		test -x $(PY) || { echo "make: creating $(VENV) with $$python ($$($$python --version))"; $$python -m venv $(VENV); }
	@touch $@

$(RUN_STAMP): $(PYTHON_STAMP) requirements/run.txt
	@echo "make: installing what the local stack needs into $(VENV) (requirements/run.txt, hashed lock; about 30 s the first time)"
	$(call PIP_INSTALL,$(PY),requirements/run.txt)
	@touch $@

$(DEV_STAMP): $(PYTHON_STAMP) requirements/dev.txt
	@echo "make: installing the local stack and every test tool into $(VENV) (requirements/dev.txt, hashed lock; a minute or two the first time)"
	$(call PIP_INSTALL,$(PY),requirements/dev.txt)
	@touch $@ $(RUN_STAMP)

$(CHECKOV): $(PYTHON_STAMP) requirements/checkov.txt
	@echo "make: installing checkov into $(VENV)/checkov (requirements/checkov.txt, its own lock)"
	rm -rf $(VENV)/checkov
	$(PY) -m venv $(VENV)/checkov
	$(call PIP_INSTALL,$(VENV)/checkov/bin/python,requirements/checkov.txt)
	@touch $@

## lock [UPGRADE=1]: regenerate the hashed locks in requirements/ from their .in files (UPGRADE=1: newest releases)
# lambda.txt is resolved for the functions' platform (Lambda python3.13 arm64, glibc 2.34); run.txt and dev.txt
# for any platform, constrained to lambda.txt's versions; checkov.txt alone.
LOCK = $(UV) pip compile --quiet --generate-hashes --python-version 3.13 --custom-compile-command "make lock" \
	$(if $(UPGRADE),--upgrade)
lock: $(DEV_STAMP)
	$(LOCK) --python-platform aarch64-manylinux_2_34 requirements/lambda.in -o requirements/lambda.txt
	$(LOCK) --universal requirements/run.in -o requirements/run.txt
	$(LOCK) --universal requirements/dev.in -o requirements/dev.txt
	$(LOCK) --universal requirements/checkov.in -o requirements/checkov.txt

## run: the whole local stack in the foreground (Ctrl-C stops it)
run: $(RUN_STAMP)
	$(PY) -m devstack run

## test: every test: unit, docs (links, code references, diagrams), integration (moto), e2e (the real stack in a subprocess), contract (schemathesis)
# Separate pytest processes: in-process moto servers must not share a process with each other's state.
test: $(DEV_STAMP) $(CHECKOV)
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
typecheck: $(DEV_STAMP)
	$(PY) -m mypy

## test-faults: the fault suite alone (every consumer under every fault; a few minutes)
test-faults: $(DEV_STAMP)
	$(PY) -m pytest tests/integration/faults

## token USER=name: an ID token for a local user of the running stack
token: $(RUN_STAMP)
	@$(PY) -m devstack token $(or $(USER_NAME),$(USER))

## fire SCHEDULE=name [AT=iso]: run a schedule now on the running stack
fire: $(RUN_STAMP)
	$(PY) -m devstack fire $(SCHEDULE) $(if $(AT),--at $(AT))

## cleanup [NOW=iso]: run the hourly cleanup on the running stack now, as if at NOW (default: now)
cleanup: $(RUN_STAMP)
	$(PY) -m devstack fire cleanup $(if $(NOW),--at $(NOW))

## rebuild-sales: rebuild the sales read model from the orders and products tables (the running local
## stack's rebuild_sales function; on AWS: aws lambda invoke --function-name <stack>-rebuild_sales out.json)
rebuild-sales: $(RUN_STAMP)
	$(PY) -m devstack invoke rebuild_sales

## traces [FILTER='order_id = "..."'] [TRACE=id] [MINUTES=60] [AWS_PROFILE=p]: recent traces and cost per
## function in the terminal, or one trace as a timeline (the running local stack; a real account only
## with AWS_PROFILE=p on the command line, never from an exported AWS_PROFILE)
traces: $(RUN_STAMP)
	@$(PY) -m devstack traces $(if $(FILTER),--filter '$(FILTER)') $(if $(TRACE),--trace $(TRACE)) \
		$(if $(MINUTES),--minutes $(MINUTES)) \
		$(if $(filter command line,$(origin AWS_PROFILE)),--profile $(AWS_PROFILE))

## mail [LIMIT=20]: the e-mail the app sent, newest first (the running local stack's mailbox; nothing leaves it)
mail: $(RUN_STAMP)
	@$(PY) -m devstack mail $(if $(LIMIT),--limit $(LIMIT))

## traces-ui AWS_PROFILE=p [TRACE_PORT=8001]: the trace viewer alone, reading a real account's X-Ray
traces-ui: $(RUN_STAMP)
	$(PY) -m devstack traces-ui $(if $(AWS_PROFILE),--profile $(AWS_PROFILE)) $(if $(TRACE_PORT),--port $(TRACE_PORT))

## bench: the benchmarks (they print their figures)
bench: $(DEV_STAMP)
	$(PY) bench/cold_start.py
	$(PY) bench/load_levelling.py
	$(PY) bench/saga.py
	$(PY) bench/renditions.py
	$(PY) bench/import.py
	$(PY) bench/console.py

## package [STAGE=dev|prod]: build/<stage>/template.json, the stack's CloudFormation template (cfn-lint clean)
STAGE ?= dev
AWS := $(VENV)/bin/aws
package: $(DEV_STAMP)
	$(PY) -m infra.package --stage $(STAGE)

## deploy STAGE=dev|prod DEPLOY_BUCKET=name: package, upload, deploy the stack storefront-<stage>, print its API URL
deploy: $(DEV_STAMP)
	@$(AWS) sts get-caller-identity >/dev/null 2>&1 || { echo "make deploy: no AWS credentials: 'aws sts get-caller-identity' failed. Configure them first (aws configure, or AWS_PROFILE=...)." >&2; exit 1; }
	@test -n "$(DEPLOY_BUCKET)" || { echo "make deploy: set DEPLOY_BUCKET to an S3 bucket you own in the target region (the code zip is uploaded there)." >&2; exit 1; }
	$(PY) -m infra.package --stage $(STAGE)
	$(AWS) cloudformation package --template-file build/$(STAGE)/template.json --s3-bucket $(DEPLOY_BUCKET) \
		--s3-prefix storefront-$(STAGE) --use-json --output-template-file build/$(STAGE)/packaged.json
	$(AWS) cloudformation deploy --template-file build/$(STAGE)/packaged.json --stack-name storefront-$(STAGE) \
		--capabilities CAPABILITY_IAM --no-fail-on-empty-changeset
	@echo "API: $$($(AWS) cloudformation describe-stacks --stack-name storefront-$(STAGE) \
		--query "Stacks[0].Outputs[?OutputKey=='EndpointURL'].OutputValue" --output text)"

clean:
	rm -rf $(VENV) .devstack .pytest_cache build
