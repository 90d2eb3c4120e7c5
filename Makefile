# DCV Fleet. `make demo`, `make test` and `make local` set everything up themselves.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin
CHECKOV_VENV := .venv-checkov
PARAMS ?=
BOOT_DELAY ?= 0
CONFIG_ENV ?=
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup browser demo local test test-portal lint bench bench-idle bench-agent bench-load docs agent-archive image-source preflight build clean

$(VENV)/.installed: requirements-dev.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(CHECKOV_VENV)/.installed: requirements-checkov.txt
	$(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/python -m pip install -q -r requirements-checkov.txt
	touch $@

setup: $(VENV)/.installed

# Debian's chromium, which the portal's browser tests drive through Playwright (never a
# downloaded browser). Installed as root, or through sudo.
CHROMIUM := /usr/bin/chromium
$(CHROMIUM):
	@if [ "$$(id -u)" = 0 ]; then as_root=; else as_root=sudo; fi; \
	$$as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q && \
	$$as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium

## browser: Debian's chromium for the portal's browser tests
browser: $(CHROMIUM)

## demo: start the local stack and follow one Linux desktop on EC2 to READY
demo: setup
	$(PY) -m local.demo --params "$(PARAMS)" --boot-delay "$(BOOT_DELAY)"

## local: run the local stack in the foreground (Ctrl-C stops it)
local: setup
	$(PY) -m local --params "$(PARAMS)" --boot-delay "$(BOOT_DELAY)"

## lint: ruff, mypy, cfn-lint, checkov, shellcheck, hadolint, PowerShell syntax, the docs' generated parts
lint: setup $(CHECKOV_VENV)/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy functions/dcvfleet agent/dcvfleet_agent cli/dcvfleet_cli local tools bench container
	$(BIN)/cfn-lint template.yaml
	$(BIN)/shellcheck agent/linux/install.sh bench/fake_nvidia_smi.sh .ci/run container/entrypoint.sh container/prime-run container/session-glxinfo container/healthcheck.sh tests/unit/fixtures/container/fake_command.sh
	$(BIN)/hadolint container/Dockerfile
	$(PY) tools/pslint.py
	$(CHECKOV_VENV)/bin/checkov --quiet --compact --skip-download --framework cloudformation -f template.yaml
	$(PY) tools/readme.py --check

## test: every check and the whole test suite, browser tests included (what CI runs)
test: lint browser
	DCVFLEET_BROWSER_TESTS=required $(BIN)/pytest -n 2 --dist loadfile

## test-portal: the portal's browser tests alone (screenshots in test-output/portal)
test-portal: setup browser
	DCVFLEET_BROWSER_TESTS=required $(BIN)/pytest tests/unit/test_portal_srp.py tests/unit/test_portal_pages.py tests/e2e/test_portal_browser.py

## bench: provisioning figures on the local stack
bench: setup
	$(PY) -m bench.provisioning

## bench-idle: a scripted day of connects and disconnects: idle stops against a 15-minute poll
bench-idle: setup
	$(PY) -m bench.idle

## bench-agent: the agent's memory and CPU at default intervals
bench-agent: setup
	$(PY) -m bench.agent_footprint

## bench-load: 200 users ask for a desktop at once: every one READY or FAILED, no duplicate, no orphan
bench-load: setup
	$(PY) -m bench.load

## bench-cold: each Lambda function's cold initialisation (imports, clients, RSS), beside the baseline revision's
.PHONY: bench-cold
bench-cold: setup
	$(PY) -m bench.coldstart

## bench-warm: warm pool hits and misses measured on the local stack, then a simulated day of four pool policies; then batch desktops on a cold, a warm and a warm-and-cached compute environment
.PHONY: bench-warm
bench-warm: setup
	$(PY) -m bench.warm
	$(PY) -m bench.batch_warm

## docs: regenerate docs/parameters.md's table and docs/workflows.md's diagrams
docs: setup
	$(PY) tools/readme.py

## agent-archive: dist/dcvfleet-agent.tar.gz, for the AgentArtifactS3Uri parameter
agent-archive: setup
	$(PY) agent/build.py

## image-source: dist/dcvfleet-image.zip, the image build project's source (image-source/ in the builds bucket)
image-source: setup
	$(PY) container/source_bundle.py

## preflight: check the AWS account and region before sam deploy (read-only; PARAMS, CONFIG_ENV; LOCAL=1 for the local stack)
preflight: setup
	PYTHONPATH=cli $(PY) -m dcvfleet_cli preflight --config-env "$(CONFIG_ENV)" --params "$(PARAMS)" $(if $(LOCAL),--local)

## build: sam build with a Python of the template's runtime (found, or told how to get one); the SAM CLI pinned in .venv-sam
build: setup
	$(PY) tools/sam_build.py -- $(SAM_BUILD_ARGS)

clean:
	rm -rf $(VENV) $(CHECKOV_VENV) .venv-sam .local .pytest_cache .mypy_cache .ruff_cache dist test-output
