# Raven training suite. The two commands: `make test` and `make demo`.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test test-fast demo protos protos-check lint bench up down reliability clean

setup:
	@scripts/setup.sh
	@scripts/setup_node.sh

protos: setup
	$(PY) scripts/gen_protos.py

protos-check: setup
	$(PY) scripts/gen_protos.py --check

# Everything: unit, integration (real nats-server, SQLite, PostgreSQL when reachable), e2e (real training).
test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Without the slow real-training tests.
test-fast: setup
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: setup
	$(PY) -m scripts.demo

lint: setup
	$(VENV)/bin/ruff check common services tests bench scripts
	$(VENV)/bin/mypy common services

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

# The long variants: >= 10,000 fuzz cases over every RPC, plus the fault-injection scenarios at full count.
# Writes its results under var/reliability, then regenerates docs/reliability.md from them (even on failures).
RELIABILITY_TESTS = tests/security tests/reliability tests/integration/test_dead_letters.py \
	tests/integration/training_run/test_dead_letters.py tests/integration/trained_model/test_registrar_poison.py \
	tests/integration/trainer_worker/test_worker_intake.py::test_a_job_whose_claim_always_fails_is_dead_lettered_after_max_deliver \
	tests/integration/trainer_worker/test_worker_intake.py::test_an_unreadable_job_is_dead_lettered_at_once \
	tests/integration/test_migrations.py::test_concurrent_starts_against_one_empty_database_migrate_once
reliability: setup
	@rm -rf var/reliability && mkdir -p var/reliability
	RAVEN_FUZZ_EXAMPLES=455 RAVEN_FUZZ_REPORT=var/reliability/fuzz_report.json \
		RAVEN_RELIABILITY_RESULTS=var/reliability RAVEN_RELIABILITY_RUNS=$${RAVEN_RELIABILITY_RUNS:-20} \
		$(PY) -m pytest -rP $(RELIABILITY_TESTS) $(PYTEST_ARGS); status=$$?; \
		$(PY) -m tests.reliability.summarize var/reliability --write docs/reliability.md \
			--command "make reliability RAVEN_RELIABILITY_RUNS=$${RAVEN_RELIABILITY_RUNS:-20}"; exit $$status

up: setup
	$(PY) -m scripts.stack up

down: setup
	$(PY) -m scripts.stack down

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
