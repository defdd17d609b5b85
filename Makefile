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

# --- Observability: Prometheus, Grafana and Jaeger beside the `make run` suite -----------------
OBS_DIR := k8s/observability
PROMETHEUS_PORT ?= 9095
GRAFANA_PORT ?= 3000
GRAFANA_HOME ?= /usr/share/grafana

.PHONY: dashboards
dashboards: ## Prometheus + Grafana + Jaeger (those installed) on loopback for the `make run` suite; prints what to open
	@set -uo pipefail; state=$(RUN_DIR)/observability; mkdir -p $$state/grafana/provisioning/{datasources,dashboards,plugins,alerting}; \
	trap 'trap - INT TERM EXIT; kill $$(jobs -p) 2>/dev/null; wait; echo "observability stopped"' INT TERM EXIT; \
	urls=(); missing=(); \
	if command -v prometheus >/dev/null; then \
	  prometheus --config.file=$(OBS_DIR)/prometheus/prometheus.local.yml --storage.tsdb.path=$$state/prometheus \
	    --web.listen-address=127.0.0.1:$(PROMETHEUS_PORT) --log.level=warn & \
	  urls+=("Prometheus:  http://127.0.0.1:$(PROMETHEUS_PORT)/   (/targets, /rules, /alerts)"); \
	else missing+=("Prometheus: apt-get install prometheus"); fi; \
	if command -v jaeger-all-in-one >/dev/null; then \
	  jaeger-all-in-one --memory.max-traces=10000 \
	    --collector.otlp.grpc.host-port=127.0.0.1:4317 --collector.otlp.http.host-port=127.0.0.1:4318 \
	    --collector.grpc-server.host-port=127.0.0.1:14250 --collector.http-server.host-port=127.0.0.1:14268 \
	    --query.http-server.host-port=127.0.0.1:16686 --query.grpc-server.host-port=127.0.0.1:16685 \
	    --admin.http.host-port=127.0.0.1:14269 >$$state/jaeger.log 2>&1 & \
	  urls+=("Jaeger:      http://127.0.0.1:16686/   (spans in on OTLP 127.0.0.1:4317)"); \
	else missing+=("Jaeger: put jaeger-all-in-one (a 1.x release of Jaeger) on the PATH"); fi; \
	grafana=""; \
	if command -v grafana >/dev/null; then grafana="grafana server"; elif command -v grafana-server >/dev/null; then grafana="grafana-server"; fi; \
	if [ -n "$$grafana" ]; then \
	  ln -sf $(CURDIR)/$(OBS_DIR)/grafana/datasources.yaml $$state/grafana/provisioning/datasources/; \
	  ln -sf $(CURDIR)/$(OBS_DIR)/grafana/dashboards.yaml $$state/grafana/provisioning/dashboards/; \
	  PROMETHEUS_URL=http://127.0.0.1:$(PROMETHEUS_PORT) PROMETHEUS_SCRAPE_INTERVAL=5s JAEGER_URL=http://127.0.0.1:16686 \
	  DASHBOARDS_DIR=$(CURDIR)/$(OBS_DIR)/grafana/dashboards \
	  GF_PATHS_PROVISIONING=$$state/grafana/provisioning GF_PATHS_DATA=$$state/grafana/data GF_PATHS_LOGS=$$state/grafana \
	  GF_PATHS_PLUGINS=$$state/grafana/plugins GF_SERVER_HTTP_ADDR=127.0.0.1 GF_SERVER_HTTP_PORT=$(GRAFANA_PORT) \
	  GF_AUTH_ANONYMOUS_ENABLED=true GF_AUTH_ANONYMOUS_ORG_ROLE=Admin GF_ANALYTICS_REPORTING_ENABLED=false \
	  GF_ANALYTICS_CHECK_FOR_UPDATES=false GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=$(CURDIR)/$(OBS_DIR)/grafana/dashboards/bookstore-overview.json \
	    $$grafana --homepath=$(GRAFANA_HOME) >$$state/grafana.log 2>&1 & \
	  urls+=("Grafana:     http://127.0.0.1:$(GRAFANA_PORT)/d/bookstore-overview   and /d/bookstore-service"); \
	else missing+=("Grafana: install Grafana's own package (not in Debian); its binary \`grafana\` or \`grafana-server\` on the PATH, GRAFANA_HOME=its homepath"); fi; \
	if [ $${#urls[@]} -eq 0 ]; then printf '  not installed: %s\n' "$${missing[@]}"; exit 1; fi; \
	if command -v prometheus >/dev/null; then \
	  for i in $$(seq 1 100); do curl -fs http://127.0.0.1:$(PROMETHEUS_PORT)/-/ready >/dev/null && break; sleep 0.1; done; fi; \
	curl -fs http://127.0.0.1:9090/readyz >/dev/null || echo "  (the suite is not answering on 127.0.0.1:9090: start it with \`make run\` in another terminal)"; \
	echo; printf '  %s\n' "$${urls[@]}"; \
	[ $${#missing[@]} -eq 0 ] || printf '  skipped, %s\n' "$${missing[@]}"; \
	echo "  Traces: run the suite as \`OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4317 make run\`."; \
	echo "  Data and logs in $$state/. Ctrl-C stops them."; echo; \
	wait
