# Partita. `make run` starts the sample application, examples/shop (embedded
# broker when no Kafka is configured); `make test` runs every test, the real-Kafka
# integration tests included (the broker is fetched and started by kafkactl).

SHELL       := /bin/bash
.SHELLFLAGS := -o pipefail -c   # a pipeline fails when its first command does

GO          ?= go
CACHE       := $(CURDIR)/.cache
BIN         := $(CACHE)/bin
KAFKACTL    := $(BIN)/kafkactl
STATICCHECK_VERSION := v0.8.2
TEMPORAL_CLI_VERSION := v1.5.1
TEST_TIMEOUT ?= 30m

.PHONY: all run test lint bench walkthrough fuzz reliability kafka-up kafka-down kafka-status kafkactl

all: lint test

run:
	$(GO) run ./cmd/worker $(ARGS)

# The broker starts once for the whole run; test packages share it. It is
# stopped afterwards unless it was already running before (make kafka-up).
# After the Go tests: the seeded-schedule summary, the reliability suite's
# short form (its own broker), and the README walkthrough against `make run`
# (embedded broker) and against the real broker.
test: kafkactl
	@was_up=$$($(KAFKACTL) status >/dev/null 2>&1 && echo yes); \
	$(KAFKACTL) up || exit 1; \
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./... && \
	$(GO) test -count=1 -run TestSeededSchedules -v ./examples/shop/ | grep -E 'schedules:|^(ok|FAIL)' && \
	$(RELIABILITY_TEST) && \
	python3 scripts/walkthrough.py && \
	KAFKA_BOOTSTRAP_SERVERS=$$($(KAFKACTL) addr) PARTITA_APP=walk$$(date +%s) python3 scripts/walkthrough.py; rc=$$?; \
	if [ -z "$$was_up" ]; then $(KAFKACTL) down; fi; \
	exit $$rc

walkthrough:
	python3 scripts/walkthrough.py

# The reliability suite (build tag reliability): prints a table of figures
# and fails if a promise does. make test runs its short form; make
# reliability the full one.
RELIABILITY_TEST = $(GO) test -tags reliability -count=1 -run TestReliability -v -timeout 60m ./reliability/ | grep -vE '^=== |^\s+(broker|kafkatest)'
reliability:
	RELIABILITY=full $(RELIABILITY_TEST)

# A short run of every fuzz target (seed corpora: f.Add and testdata/fuzz).
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEvent$$' -fuzztime $(FUZZTIME) ./codec/
	$(GO) test -run '^$$' -fuzz '^FuzzDecodeEnvelope$$' -fuzztime $(FUZZTIME) ./internal/envelope/
	$(GO) test -run '^$$' -fuzz '^FuzzParseYAML$$' -fuzztime $(FUZZTIME) ./processor/broker/
	$(GO) test -run '^$$' -fuzz '^FuzzReadingEnvelopesAndRows$$' -fuzztime $(FUZZTIME) ./internal/viewstore/
	$(GO) test -run '^$$' -fuzz '^FuzzParseQuery$$' -fuzztime $(FUZZTIME) ./worker/

# Benchmarks print ratios against a baseline measured in the same run, one
# package at a time; bench/report renders them into bench/results/ and the
# README. BENCH_COMMANDS, BENCH_SUBJECTS, BENCH_RECORDS and BENCH_ENTITIES
# size the workloads (see bench/), BENCH_WORKFLOWS and BENCH_TIMER_DELAY the
# timer and workflow ones (both sides), BENCH_TIMERS the timers fired against
# commands, BENCH_PENDING_TIMERS and BENCH_DUE_TIMERS the pending timers. The timer and workflow peer is Temporal's
# development server: its CLI is built into the cache when missing, and the
# program that drives it (bench/temporal, a module of its own) by the
# benchmarks.
bench: kafkactl $(BIN)/temporal
	@was_up=$$($(KAFKACTL) status >/dev/null 2>&1 && echo yes); \
	$(KAFKACTL) up >/dev/null || exit 1; \
	$(GO) test -p 1 -run '^$$' -bench . -benchtime 1x -timeout 30m ./internal/viewstore/ ./worker/ ./bench/ | tee $(CACHE)/bench.log && \
	$(GO) run ./bench/report -in $(CACHE)/bench.log -out bench/results -readme README.md; rc=$$?; \
	if [ -z "$$was_up" ]; then $(KAFKACTL) down; fi; \
	exit $$rc

lint: $(BIN)/staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./... && $(GO) vet -tags reliability ./reliability/
	$(BIN)/staticcheck ./... && $(BIN)/staticcheck -tags reliability ./reliability/

$(BIN)/staticcheck:
	GOBIN=$(BIN) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

$(BIN)/temporal:
	GOBIN=$(BIN) $(GO) install github.com/temporalio/cli/cmd/temporal@$(TEMPORAL_CLI_VERSION)

kafkactl:
	@GOBIN=$(BIN) $(GO) install ./internal/kafkatest/kafkactl

kafka-up: kafkactl
	$(KAFKACTL) up

kafka-down: kafkactl
	$(KAFKACTL) down

kafka-status: kafkactl
	$(KAFKACTL) status
