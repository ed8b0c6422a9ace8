# Batchline development commands. `make demo`/`make local` and `make test` do all set-up themselves.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PORT ?= 8000
# What `make local` keeps across restarts: the demo API key, admin key, tenant and job id.
LOCAL_STATE ?= .localcloud/state.json
VENV := .venv
SAM_VENV := .venv-sam
CHECKOV_VENV := .venv-checkov
ASL_VALIDATOR := tools/asl/node_modules/.bin/asl-validator
PY := $(VENV)/bin/python
PYENV_ROOT ?= $(HOME)/.pyenv
# Lambda runs python3.13: develop and build on the same minor version. A pyenv shim only answers
# when PYENV_VERSION names it, so prefer the interpreter's real path.
PYTHON313 ?= $(or $(lastword $(sort $(wildcard $(PYENV_ROOT)/versions/3.13*/bin/python3.13))),$(shell command -v python3.13))

# Never reach a real AWS account from development commands.
export AWS_EC2_METADATA_DISABLED := true
export SAM_CLI_TELEMETRY := 0
# sam build looks for `python3.13` on PATH: the project's virtualenv provides it.
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help venv demo local test check lint format build validate security asl invariants pytest bench deploy clean

help:
	@echo "make demo     run a batch on the local cloud with the openai SDK and show it happen"
	@echo "make local    start the local cloud on http://127.0.0.1:$(PORT)/v1 (PORT=... to move it)"
	@echo "make test     lint, sam validate --lint, sam build, and every test"
	@echo "make bench    every benchmark against its baseline; writes docs/benchmarks.md"
	@echo "make deploy   sam build && sam deploy --guided (needs AWS credentials)"

$(VENV)/.installed: pyproject.toml layers/core/requirements.txt
	@test -n "$(PYTHON313)" || { echo "python3.13 is required (pyenv install 3.13)"; exit 1; }
	$(PYTHON313) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=25.1"
	$(PY) -m pip install --quiet -r layers/core/requirements.txt --group dev
	touch $@

# aws-sam-cli pins its own boto3 and pydantic: it lives in a virtualenv of its own.
# cfn-lint stays below 1.54, the last line that runs the SAM transform before linting.
$(SAM_VENV)/.installed:
	@test -n "$(PYTHON313)" || { echo "python3.13 is required (pyenv install 3.13)"; exit 1; }
	$(PYTHON313) -m venv $(SAM_VENV)
	$(SAM_VENV)/bin/pip install --quiet --upgrade "pip>=25.1"
	$(SAM_VENV)/bin/pip install --quiet "aws-sam-cli==1.170.0" "cfn-lint==1.53.3"
	touch $@

# checkov pins its own dependencies too: a third virtualenv.
$(CHECKOV_VENV)/.installed:
	@test -n "$(PYTHON313)" || { echo "python3.13 is required (pyenv install 3.13)"; exit 1; }
	$(PYTHON313) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install --quiet --upgrade "pip>=25.1"
	$(CHECKOV_VENV)/bin/pip install --quiet "checkov==3.3.30"
	touch $@

venv: $(VENV)/.installed

# asl-validator (npm), pinned by tools/asl/package-lock.json.
$(ASL_VALIDATOR): tools/asl/package.json tools/asl/package-lock.json
	@command -v npm >/dev/null || { echo "node and npm are required (asl-validator)"; exit 1; }
	cd tools/asl && npm ci --no-audit --no-fund --silent
	touch $@

demo: venv
	$(PY) -m localcloud.demo

local: venv
	$(PY) -m localcloud --port $(PORT) --state $(LOCAL_STATE)

# Each function's folder is a root of its own, as Lambda runs it: every one has a module named `app` (and the
# api's imports `routes`), so one mypy run over them all would see `app` twice. mypy checks each folder apart,
# as strictly as the core, finding the core through pyproject.toml's mypy_path.
FUNCTIONS := $(patsubst %/app.py,%,$(wildcard functions/*/app.py))

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@for function in $(FUNCTIONS); do echo "$(VENV)/bin/mypy $$function"; $(VENV)/bin/mypy $$function || exit 1; done

format: venv
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

validate: $(SAM_VENV)/.installed
	AWS_DEFAULT_REGION=us-east-1 $(SAM_VENV)/bin/sam validate --lint

build: $(SAM_VENV)/.installed venv
	$(SAM_VENV)/bin/sam build --parallel

security: $(CHECKOV_VENV)/.installed
	$(CHECKOV_VENV)/bin/checkov -f template.yaml --config-file .checkov.yaml

# The state machine definitions, as written and with their DefinitionSubstitutions applied.
asl: $(ASL_VALIDATOR) venv
	$(PY) tools/asl/check.py

# What the template must keep true for every stack name it accepts.
invariants: venv
	$(PY) -m pytest -q tests/unit/test_template_invariants.py

check: lint validate security asl invariants build

pytest: venv
	$(PY) -m pytest tests/unit tests/integration
	$(PY) -m pytest tests/e2e

test: check pytest

# Benchmarks, not tests: each against a baseline measured in the same run. The cold-start benchmark
# reports the built layer's size, so the layer is built first.
bench: venv build
	$(PY) benchmarks/run.py

deploy: $(SAM_VENV)/.installed venv
	$(SAM_VENV)/bin/sam build --parallel
	$(SAM_VENV)/bin/sam deploy --guided

clean:
	rm -rf $(VENV) $(SAM_VENV) $(CHECKOV_VENV) tools/asl/node_modules .aws-sam .pytest_cache .mypy_cache .ruff_cache
