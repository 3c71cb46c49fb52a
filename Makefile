# Valhalla. `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
LDFLAGS := -X main.version=$(VERSION) -X main.commit=$(COMMIT)
GO_FILES = $(shell git ls-files --cached --others --exclude-standard '*.go')

.PHONY: help run build test test-go abuse test-ts durability conformance api-diff generate check-generated lint lint-spec postgres chromium bench bench-scale hangup

# API_DIFF_BASE is the git ref whose openapi.yaml `make api-diff` compares against.
API_DIFF_BASE ?= HEAD~1

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: $(if $(DATABASE_URL),,postgres) ## Serve on 127.0.0.1:8080 with a local PostgreSQL cluster under ./.valhalla (or on DATABASE_URL)
	go run -ldflags "$(LDFLAGS)" ./cmd/valhalla serve

build: ## Build bin/valhalla
	go build -ldflags "$(LDFLAGS)" -o bin/valhalla ./cmd/valhalla

test: postgres chromium lint test-go abuse test-ts conformance ## Lint, Go tests, the abuse suite, the TypeScript client test and Schemathesis

test-go: postgres chromium ## Go tests (race detector, real PostgreSQL, real Chromium), the service's and the benchmark's
	go test -race -count=1 -timeout 30m ./...
	cd bench && go test -race -count=1 ./...

abuse: postgres ## The abuse suite alone (TestAbuse: it measures latency, so nothing else runs beside it)
	set -o pipefail; VALHALLA_ABUSE=1 go test -count=1 -timeout 15m -v -run '^TestAbuse$$' ./cmd/valhalla | grep -E '^\s*(---|ok|FAIL|PASS)|abuse_test.go'

durability: postgres ## Only the crash tests (kill -9, PostgreSQL restart), printing their figures
	set -o pipefail; go test -race -count=1 -v -run 'TestDurability' ./cmd/valhalla | grep -E '^(---|ok|FAIL)|durability across|crash [0-9]'

test-ts: node_modules build ## The TypeScript client's tests against a live server, and the viewer's verifier against the ledger's vectors
	npm run --silent test:ui
	rm -rf clients/ts/dist
	npm run --silent build:ts
	scripts/with-server.sh npm run --silent test:ts

conformance: .venv/.installed build ## Schemathesis (every check, positive+negative, stateful) against a live server
	scripts/with-server.sh conformance/run.sh

api-diff: ## Fail on breaking changes to openapi.yaml since API_DIFF_BASE (default: the previous commit)
	@if ! git cat-file -e "$(API_DIFF_BASE):openapi.yaml" 2>/dev/null; then \
		echo "api-diff: no openapi.yaml at $(API_DIFF_BASE); nothing to compare"; exit 0; fi
	@base=$$(mktemp --suffix=.yaml); trap 'rm -f $$base' EXIT; \
	git show "$(API_DIFF_BASE):openapi.yaml" > $$base; \
	if go tool oasdiff breaking $$base openapi.yaml --fail-on ERR --flatten-allof --color never; then \
		echo "api-diff: no breaking changes since $(API_DIFF_BASE)"; \
	elif [ "$${API_BREAK_INTENDED:-}" = 1 ] || git log -1 --format=%B | grep -qi '^API-Break:'; then \
		echo "api-diff: breaking changes above are declared intended (API_BREAK_INTENDED=1 or an API-Break: trailer)"; \
	else \
		echo "api-diff: breaking changes to openapi.yaml; if intended, add an 'API-Break: <why>' trailer to the commit message or set API_BREAK_INTENDED=1"; \
		exit 1; \
	fi

bench: postgres build ## Measure the stack against its floors (BENCH_DURATION, BENCH_CONCURRENCY, BENCH_ROWS)
	cd bench && go build -o ../bin/valhalla-bench .
	bin/valhalla-bench

bench-scale: postgres build ## The cost curve: the same runs at 1M, 10M and (disk allowing) 30M rows (BENCH_SCALE_SIZES; docs/scaling.md)
	cd bench && go build -o ../bin/valhalla-bench .
	bin/valhalla-bench -only scale

hangup: postgres build ## The abandoned-request drill: 10 s of load whose clients hang up; fails on any ERROR the server logs
	cd bench && go run ./hangup -bin ../bin/valhalla

generate: node_modules ## Regenerate gen/ (Go server, models and client; sqlc queries; TypeScript types) and the pages' assets
	go tool oapi-codegen -config oapi-codegen.yaml openapi.yaml
	go run ./internal/cmd/correlationgen -o gen/correlation/correlation.gen.go
	go tool sqlc generate
	npm run --silent gen:ts
	npm run --silent assets

check-generated: generate ## Fail when gen/ or the pages' built assets differ from what the generators produce
	@if [ -n "$$(git status --porcelain -- gen internal/pages/assets)" ]; then \
		echo "gen/ or internal/pages/assets is out of date or hand-edited; run make generate and commit:"; \
		git status --porcelain -- gen internal/pages/assets; git --no-pager diff --stat -- gen internal/pages/assets; exit 1; \
	fi

lint: lint-spec ## go vet, gofmt and the spec linter (the service and bench/)
	go vet ./...
	cd bench && go vet ./...
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

lint-spec: node_modules ## Redocly's recommended ruleset on openapi.yaml (exceptions in redocly.yaml)
	npm run --silent lint:spec

node_modules: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch node_modules

.venv/.installed: conformance/requirements.txt
	@if ! python3 -c 'import ensurepip' 2>/dev/null; then \
		if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
			echo "installing python3-venv (apt-get install python3-venv)"; \
			DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null; \
		else echo "Python's venv module is missing: install it (e.g. apt-get install python3-venv)"; exit 1; fi; \
	fi
	python3 -m venv .venv
	.venv/bin/pip install --quiet --disable-pip-version-check -r conformance/requirements.txt
	@touch $@

chromium: ## Install Debian's Chromium for the browser tests if CHROME_BIN and /usr/bin/chromium are missing
	@if [ -n "$$CHROME_BIN" ] && [ -x "$$CHROME_BIN" ] || [ -x /usr/bin/chromium ]; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing Chromium for the browser tests (apt-get install chromium)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	else \
		echo "Chromium not found: install it (e.g. apt-get install chromium) or set CHROME_BIN to a Chromium binary"; exit 1; \
	fi

# The tests start clusters of their own (the embedded default, crashes and
# restarts), so they need the server binaries even when DATABASE_URL is set;
# only make run can do without them.
postgres: ## Install the PostgreSQL server binaries if this machine has none
	@if [ -n "$$PG_BINDIR" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| command -v initdb >/dev/null 2>&1 || command -v pg_config >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing the PostgreSQL server (apt-get install postgresql)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL server binaries not found: install PostgreSQL (e.g. apt-get install postgresql)," \
			"or set PG_BINDIR to its bin directory"; exit 1; \
	fi
