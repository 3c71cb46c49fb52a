# Valhalla. `make help` lists the targets.
SHELL := /usr/bin/env bash
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
GO_FILES = $(shell git ls-files --cached --others --exclude-standard '*.go')

.PHONY: help run build test generate check-generated lint postgres bench

help: ## Show this help
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-16s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

run: postgres ## Serve on 127.0.0.1:8080 with a local PostgreSQL cluster under ./.valhalla
	go run -ldflags "$(LDFLAGS)" ./cmd/valhalla serve

build: ## Build bin/valhalla
	go build -ldflags "$(LDFLAGS)" -o bin/valhalla ./cmd/valhalla

test: postgres lint ## Lint, then run every test (race detector, real PostgreSQL)
	go test -race -count=1 ./...

bench: postgres build ## Measure the stack against its floors (BENCH_DURATION, BENCH_CONCURRENCY, BENCH_ROWS)
	go build -o bin/valhalla-bench ./cmd/valhalla-bench
	bin/valhalla-bench

generate: ## Regenerate gen/ from openapi.yaml, queries/ and migrations/
	go tool oapi-codegen -config oapi-codegen.yaml openapi.yaml
	go tool sqlc generate

check-generated: generate ## Fail when gen/ differs from what the generators produce
	@if [ -n "$$(git status --porcelain -- gen)" ]; then \
		echo "gen/ is out of date or hand-edited; run make generate and commit:"; \
		git status --porcelain -- gen; git --no-pager diff --stat -- gen; exit 1; \
	fi

lint: ## go vet and gofmt
	go vet ./...
	@unformatted="$$(gofmt -l $(GO_FILES))"; \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi

postgres: ## Install the PostgreSQL server binaries if this machine has none
	@if [ -n "$$PG_BINDIR" ] || [ -n "$$DATABASE_URL" ] || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 \
		|| command -v initdb >/dev/null 2>&1 || command -v pg_config >/dev/null 2>&1; then :; \
	elif command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		echo "installing the PostgreSQL server (apt-get install postgresql)"; \
		DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; \
	else \
		echo "PostgreSQL server binaries not found: install PostgreSQL (e.g. apt-get install postgresql)," \
			"set PG_BINDIR to its bin directory, or set DATABASE_URL"; exit 1; \
	fi
