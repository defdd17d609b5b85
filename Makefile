# Bookstore: the verbs a user expects. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
RUN_DIR := .run
BINS := marketplace recommendations users gateway

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## Build every binary (release)
	$(CARGO) build --release --bins

.PHONY: run
run: build ## Run the whole suite locally (SQLite files in .run/), print the URL; Ctrl-C stops it
	@set -uo pipefail; mkdir -p $(RUN_DIR); \
	[ -s $(RUN_DIR)/token_secret ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > $(RUN_DIR)/token_secret; \
	export TOKEN_SECRET=$$(cat $(RUN_DIR)/token_secret) LOG_FORMAT=$${LOG_FORMAT:-text}; \
	trap 'trap - INT TERM EXIT; kill $$(jobs -p) 2>/dev/null; wait; echo "suite stopped"' INT TERM EXIT; \
	target/release/marketplace & \
	DATABASE_URL="sqlite://$(RUN_DIR)/recommendations.db?mode=rwc" target/release/recommendations & \
	DATABASE_URL="sqlite://$(RUN_DIR)/users.db?mode=rwc" target/release/users & \
	target/release/gateway & \
	for port in 9091 9092 9093 9090; do \
	  for i in $$(seq 1 200); do curl -fs http://127.0.0.1:$$port/readyz >/dev/null && break; sleep 0.05; done; \
	done; \
	echo; echo "  Bookstore is up:  http://127.0.0.1:8080/"; \
	echo "  API:              http://127.0.0.1:8080/api/v1/openapi.json"; \
	echo "  Metrics:          http://127.0.0.1:9090/metrics (gateway), :9091 marketplace, :9092 recommendations, :9093 users"; \
	echo "  Ctrl-C stops every process."; echo; \
	wait

.PHONY: test
test: ## Format check, clippy, then every test (unit, per-service, suite-level)
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	$(CARGO) test --workspace

.PHONY: check
check: test ## Same as test

.PHONY: integration-test
integration-test: ## Suite-level tests alone: a suite they start, or BOOKSTORE_BASE_URL=http://… (a cluster)
	$(CARGO) build --bins
	$(CARGO) test -p tests -- --test-threads=2

.PHONY: clean
clean: ## Remove build output and local databases
	$(CARGO) clean
	rm -rf $(RUN_DIR)

.PHONY: bench
bench: ## CPU per request side by side: bare axum, direct gRPC, the gateway; metrics layer with/without
	$(CARGO) bench -p gateway --bench overhead
