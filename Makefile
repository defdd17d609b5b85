# Bookstore: the verbs a user expects. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
RUN_DIR := .run
SERVICES := marketplace recommendations users gateway
BINS := $(SERVICES) loadgen

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[1m%-18s\033[0m %s\n", $$1, $$2}'

.PHONY: build
build: ## Build every binary (release)
	$(CARGO) build --release --bins

# What `make run` needs: the four services, not the tools (a cold build is a minute shorter).
.PHONY: build-services
build-services:
	$(CARGO) build --release $(addprefix --bin ,$(SERVICES))

# Recommendations replicas `make run` starts on the one SQLite file (each follows the ratings log).
RECOMMENDATIONS_REPLICAS ?= 1

.PHONY: run
run: build-services ## Run the whole suite locally (SQLite files in .run/), print the URL; Ctrl-C stops it (RECOMMENDATIONS_REPLICAS=2: two replicas)
	@set -uo pipefail; umask 077; mkdir -p $(RUN_DIR); rm -f $(RUN_DIR)/token_secret; \
	if [ ! -s $(RUN_DIR)/token_signing_key ] || [ ! -s $(RUN_DIR)/token_public_keys ]; then \
	  keys=$$(target/release/users keygen) || exit 1; \
	  sed -n 's/^TOKEN_SIGNING_KEY=//p' <<<"$$keys" > $(RUN_DIR)/token_signing_key; \
	  sed -n 's/^TOKEN_PUBLIC_KEYS=//p' <<<"$$keys" > $(RUN_DIR)/token_public_keys; unset keys; \
	fi; \
	chmod 600 $(RUN_DIR)/token_signing_key $(RUN_DIR)/token_public_keys; \
	export TOKEN_PUBLIC_KEYS=$$(cat $(RUN_DIR)/token_public_keys) LOG_FORMAT=$${LOG_FORMAT:-text} \
	  GLIBC_TUNABLES=$${GLIBC_TUNABLES:-glibc.malloc.tcache_count=64}; \
	stop() { kill $$(jobs -p) 2>/dev/null; wait; echo "suite stopped"; }; \
	trap 'trap - EXIT; stop; exit 130' INT TERM; trap stop EXIT; \
	declare -A pid admin=([marketplace]=9091 [users]=9093 [gateway]=9090); names="marketplace"; recs=""; \
	target/release/marketplace & pid[marketplace]=$$!; \
	for i in $$(seq 1 $(RECOMMENDATIONS_REPLICAS)); do \
	  name=recommendations; [ $$i -eq 1 ] || name=recommendations-$$i; \
	  grpc=$$((50052 + 10 * (i - 1))); admin[$$name]=$$((9092 + 10 * (i - 1))); \
	  GRPC_ADDR=127.0.0.1:$$grpc ADMIN_ADDR=127.0.0.1:$${admin[$$name]} DATABASE_URL="sqlite://$(RUN_DIR)/recommendations.db?mode=rwc" \
	    target/release/recommendations & pid[$$name]=$$!; \
	  names="$$names $$name"; recs="$${recs:+$$recs,}http://127.0.0.1:$$grpc"; \
	done; \
	DATABASE_URL="sqlite://$(RUN_DIR)/users.db?mode=rwc" TOKEN_SIGNING_KEY="$$(cat $(RUN_DIR)/token_signing_key)" \
	  target/release/users & pid[users]=$$!; \
	RECOMMENDATIONS_URL=$$recs target/release/gateway & pid[gateway]=$$!; \
	for name in $$names users gateway; do \
	  ok=""; for i in $$(seq 1 300); do \
	    if curl -fs http://127.0.0.1:$${admin[$$name]}/readyz >/dev/null; then ok=1; break; fi; \
	    if ! kill -0 $${pid[$$name]} 2>/dev/null; then break; fi; \
	    sleep 0.05; \
	  done; \
	  if [ -z "$$ok" ]; then \
	    if kill -0 $${pid[$$name]} 2>/dev/null; then why="is not ready after 15 s (http://127.0.0.1:$${admin[$$name]}/readyz)"; \
	    else wait $${pid[$$name]}; why="exited with status $$?"; fi; \
	    echo; echo "  make run: $$name $$why; its log is above. Stopping the suite." >&2; \
	    exit 1; \
	  fi; \
	done; \
	echo; echo "  Bookstore is up:  http://127.0.0.1:8080/"; \
	echo "  API:              http://127.0.0.1:8080/api/v1/openapi.json"; \
	echo "  Metrics:          http://127.0.0.1:9090/metrics (gateway), :9091 marketplace, :9092 recommendations, :9093 users"; \
	[ $(RECOMMENDATIONS_REPLICAS) -eq 1 ] || echo "  Replicas:         recommendations on :50052, :50062 ... (admin :9092, :9102 ...; compare their /index)"; \
	echo "  Faults (drills):  curl -X PUT 127.0.0.1:9091/faults -d '{\"rules\":[{\"latency_ms\":300}]}'  (9092, 9093 likewise)"; \
	echo "  Ctrl-C stops every process."; echo; \
	wait -n; echo "  make run: a process of the suite exited; stopping the others." >&2; exit 1

.PHONY: test
test: ## Links in README.md and docs/, fmt, clippy, every test (unit, per-service, suite, traces, dashboards), then the deployment checks
	python3 docs/check_links.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) build --workspace --bins
	@rm -f target/skipped-tests.txt
	BOOKSTORE_SKIP_LOG=$(CURDIR)/target/skipped-tests.txt $(CARGO) test --workspace
	@if [ -s target/skipped-tests.txt ]; then \
	  echo "SKIPPED: cargo test passed, but these checked nothing here (docs/testing.md says how to run them):"; \
	  sort -u target/skipped-tests.txt | sed 's/^/  - /'; \
	fi
	@if [ -n "$${BOOKSTORE_REQUIRE_DEPLOY_CHECKS:-}" ] || $(MAKE) --no-print-directory -s deploy-tools-present; then \
	  $(MAKE) --no-print-directory k8s-verify k8s-containers; \
	else \
	  echo "SKIPPED: the deployment checks (make k8s-verify k8s-containers) need kubectl, docker, debootstrap,"; \
	  echo "         PostgreSQL and the Python tools of k8s/tests/requirements.txt; .ci/run installs them all."; \
	fi
	@$(MAKE) --no-print-directory api-contract-or-skip

# --- Browser tests: headless Chromium through chromedriver (tests/tests/browser/) --------------
SCREENSHOTS_SHOWN := home-desktop home-phone book-phone

.PHONY: browser-deps
browser-deps:
	@[ -f tests/browser/node_modules/axe-core/axe.min.js ] && [ -d tests/browser/node_modules/@connectrpc/connect-web ] \
	  || npm ci --prefix tests/browser --no-audit --no-fund

# The gRPC-Web client generated from protos/ (tests/browser/gen/), as the Node and browser tests use it.
.PHONY: grpc-web-client
grpc-web-client: browser-deps ## Generate the TypeScript/JavaScript gRPC-Web client from protos/ into tests/browser/gen/
	npm run --prefix tests/browser build

.PHONY: browser-test
browser-test: browser-deps ## The pages in headless Chromium: flows with and without JavaScript, gRPC-Web, axe-core, screenshots
	$(CARGO) build --bins
	BOOKSTORE_REQUIRE_BROWSER=1 $(CARGO) test -p tests --test browser -- --nocapture

.PHONY: screenshots
screenshots: ## Home and a book page at phone and desktop widths into target/screenshots/, the README's into docs/screenshots/
	$(CARGO) build --bins
	@set -u; BOOKSTORE_REQUIRE_BROWSER=1 $(CARGO) test -p tests --test browser -- --nocapture --exact \
	  layout::home_and_book_pages_fit_phone_and_desktop_widths_with_screenshots; status=$$?; \
	mkdir -p docs/screenshots; \
	for s in $(SCREENSHOTS_SHOWN); do cp target/screenshots/$$s.png docs/screenshots/ || status=1; done; \
	ls -l docs/screenshots; exit $$status

SCHEMATHESIS ?= schemathesis
API_CONTRACT_EXAMPLES ?= 30

.PHONY: api-contract
api-contract: ## The REST contract: the suite started, schemathesis --checks all on /api/v1/openapi.json, anonymous and with a token
	$(CARGO) build --bins
	SCHEMATHESIS=$(SCHEMATHESIS) MAX_EXAMPLES=$(API_CONTRACT_EXAMPLES) gateway/tests/contract/run.sh

.PHONY: api-contract-or-skip
api-contract-or-skip:
	@if [ -n "$${BOOKSTORE_REQUIRE_DEPLOY_CHECKS:-}" ] || command -v $(SCHEMATHESIS) >/dev/null; then \
	  $(MAKE) --no-print-directory api-contract; \
	else \
	  echo "SKIPPED: the API contract check (make api-contract) needs schemathesis (k8s/tests/requirements.txt;"; \
	  echo "         .ci/run installs it)."; \
	fi

.PHONY: deploy-tools-present
deploy-tools-present:
	@command -v kubectl >/dev/null && command -v checkov >/dev/null && command -v debootstrap >/dev/null \
	  && [ -x /usr/bin/docker ] && [ -n "$${TEST_POSTGRES_URL:-}" ] \
	  && $(PYTHON) -c 'import kubernetes_validate, grpc_health, pytest, yaml' 2>/dev/null

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
bench: bench-outside bench-curves bench-recommendations bench-replicas ## Every benchmark: the suite from outside beside a bare floor; latency curves; recommendations at 1M ratings; three replicas converging

.PHONY: bench-outside
bench-outside: ## Release processes under wrk/h2load, CPU from /proc, beside a bare axum -> tonic pair (report: target/bench/outside.md)
	@command -v wrk >/dev/null && command -v h2load >/dev/null || { echo "make bench needs wrk and h2load: apt-get install wrk nghttp2-client" >&2; exit 1; }
	$(CARGO) build --release --bins
	$(CARGO) run --release -p bench --bin outside -- $(BENCH_ARGS)
	python3 docs/bench_report.py outside target/bench/outside.md

.PHONY: bench-curves
bench-curves: ## p50/p99 against offered rate (open loop, 9 steps past capacity) for five paths, suite and bare pair; servers on CPU 1, load on CPU 0 (report: docs/performance.md and docs/performance-curves.svg)
	@command -v taskset >/dev/null || { echo "make bench-curves needs taskset (util-linux)" >&2; exit 1; }
	$(CARGO) build --release --bins
	$(CARGO) run --release -p bench --bin curves -- $${STEP_SECONDS:-3}
	python3 docs/bench_report.py curves target/bench/curves.md

.PHONY: bench-recommendations
bench-recommendations: ## Recommendations over 1,000,000 synthetic ratings: RSS, exec->SERVING, p50/p99 (report in target/bench/)
	$(CARGO) build --release -p recommendations --bin recommendations
	$(CARGO) bench -p recommendations --bench scale -- --ratings $${RATINGS:-1000000} --users $${USERS:-50000}
	python3 docs/bench_report.py recommendations target/bench/recommendations-scale.md

.PHONY: bench-replicas
bench-replicas: ## Three recommendations replicas on one PostgreSQL (TEST_POSTGRES_URL): a rating's p50/p99/max to every replica at 50/s and 500/s, CPU per change (report: target/bench/replicas.md)
	$(CARGO) build --release --bins
	$(CARGO) bench -p recommendations --bench replicas -- $(REPLICAS_ARGS)
	python3 docs/bench_report.py replicas target/bench/replicas.md

# --- The regression alarm: callgrind's instructions per request on the hot paths (hotpaths/) -----
.PHONY: perf-check
perf-check: ## The regression alarm: instructions per request of the hot paths under callgrind; fails on a rise above hotpaths/baseline.json's threshold
	@command -v $${VALGRIND:-valgrind} >/dev/null || { echo "make perf-check needs valgrind: apt-get install valgrind" >&2; exit 1; }
	$(CARGO) build --release -p hotpaths
	target/release/hotpaths check

.PHONY: perf-baseline
perf-baseline: ## Rewrite hotpaths/baseline.json from this tree (a rise that is intended: commit it, saying why)
	@command -v $${VALGRIND:-valgrind} >/dev/null || { echo "make perf-baseline needs valgrind: apt-get install valgrind" >&2; exit 1; }
	$(CARGO) build --release -p hotpaths
	target/release/hotpaths update

# What CI runs after the tests: the alarm, or a note saying why not (a failure when
# BOOKSTORE_REQUIRE_VALGRIND is set, as .ci/run sets it).
.PHONY: perf-check-or-skip
perf-check-or-skip:
	@if [ -n "$${BOOKSTORE_REQUIRE_VALGRIND:-}" ] || command -v $${VALGRIND:-valgrind} >/dev/null; then \
	  $(MAKE) --no-print-directory perf-check; \
	else \
	  echo "SKIPPED: the regression alarm (make perf-check) needs valgrind (.ci/run installs it)."; \
	fi

# --- Load and seed data: loadgen against the `make run` suite (or LOAD_TARGET, e.g. a cluster) ---
LOAD_TARGET ?= http://127.0.0.1:8080
LOAD_ARGS ?=
SEED_ARGS ?= --users 200 --seed 1

.PHONY: load
load: ## Shoppers against the `make run` suite: 20 req/s for 60 s, summary at the end (LOAD_ARGS="--rate 50 --duration 5m"; metrics on :9094)
	$(CARGO) build --release -p loadgen --bin loadgen
	LOADGEN_METRICS_ADDR=$${LOADGEN_METRICS_ADDR:-127.0.0.1:9094} target/release/loadgen --target $(LOAD_TARGET) $(LOAD_ARGS)

.PHONY: seed
seed: ## Users and ratings through the public API, by the catalog's popularity (SEED_ARGS="--users 200 --seed 1"; idempotent)
	$(CARGO) build --release -p loadgen --bin loadgen
	target/release/loadgen seed --target $(LOAD_TARGET) $(SEED_ARGS)

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

# --- Deployment: the image, a kind or minikube cluster, and the checks that need no cluster -------
IMAGE ?= bookstore:dev
OVERLAY ?= kind
KIND_CLUSTER ?= bookstore
K8S_NAMESPACE ?= bookstore
PYTHON ?= python3
# A docker client that can build with BuildKit (k8s/scripts/docker-cli.sh says which and why).
DOCKER ?= $(shell k8s/scripts/docker-cli.sh)
export DOCKER_BUILDKIT := 1
# PREBUILT=1: put the binaries of `cargo build --release --bins` into the image instead of
# compiling inside Docker (no Rust image needed). RUNTIME_IMAGE: another runtime base.
PREBUILT ?=
RUNTIME_IMAGE ?=
LOCAL_BASE_IMAGE ?= bookstore-local/debian:bookworm-minbase
RUNTIME_ARG = $(if $(RUNTIME_IMAGE),--build-arg RUNTIME_IMAGE=$(RUNTIME_IMAGE))

.PHONY: images
images: ## Build the image $(IMAGE): one executable for all five binaries (PREBUILT=1: from target/release, no Rust image)
ifeq ($(PREBUILT),1)
	$(CARGO) build --release -p bookstore
	rm -rf $(RUN_DIR)/image-context && mkdir -p $(RUN_DIR)/image-context/out
	strip -o $(RUN_DIR)/image-context/out/bookstore target/release/bookstore
	for name in $(BINS); do ln -s bookstore $(RUN_DIR)/image-context/out/$$name; done
	$(DOCKER) build --build-arg BINARIES=prebuilt $(RUNTIME_ARG) -t $(IMAGE) -f Dockerfile $(RUN_DIR)/image-context
else
	$(DOCKER) build $(RUNTIME_ARG) -t $(IMAGE) .
endif
	@$(DOCKER) image inspect -f 'image $(IMAGE): {{.Size}} bytes' $(IMAGE)

.PHONY: kind-up
kind-up: ## Create the kind cluster (k8s/kind-config.yaml: the gateway on http://localhost:8080)
	@kind get clusters 2>/dev/null | grep -qx $(KIND_CLUSTER) && echo "kind cluster $(KIND_CLUSTER) exists" \
	  || kind create cluster --name $(KIND_CLUSTER) --config k8s/kind-config.yaml --wait 120s

.PHONY: kind-down
kind-down: ## Delete the kind cluster (and everything in it)
	kind delete cluster --name $(KIND_CLUSTER)

.PHONY: kind-load
kind-load: ## Copy the image $(IMAGE) into the kind node (no registry)
	kind load docker-image $(IMAGE) --name $(KIND_CLUSTER)

.PHONY: minikube-up
minikube-up: ## Start minikube with a CNI that enforces NetworkPolicies (calico) and metrics-server
	minikube start --cni=calico --cpus=2 --memory=4g
	minikube addons enable metrics-server

.PHONY: minikube-load
minikube-load: ## Copy the image $(IMAGE) into minikube (no registry)
	minikube image load $(IMAGE)

.PHONY: k8s-secrets
k8s-secrets: ## Generate the Secrets' random values into k8s/base/secrets/*.env (git-ignored; kept if present)
	@k8s/scripts/gen-secrets.sh

.PHONY: deploy
deploy: k8s-secrets ## Apply k8s/overlays/$(OVERLAY) (kind|minikube) and wait until every pod is Ready
	kubectl apply -k k8s/overlays/$(OVERLAY)
	@for w in $$(kubectl -n $(K8S_NAMESPACE) get deploy,statefulset -o name); do \
	  kubectl -n $(K8S_NAMESPACE) rollout status $$w --timeout=300s || exit 1; done
	@kubectl -n $(K8S_NAMESPACE) get pods
	@echo; echo "  kind: http://localhost:8080/    minikube: \`minikube service gateway -n $(K8S_NAMESPACE) --url\`"

.PHONY: undeploy
undeploy: ## Delete what deploy applied, the namespace and the database volume with it
	kubectl delete -k k8s/overlays/$(OVERLAY) --ignore-not-found

.PHONY: port-forward
port-forward: ## Grafana :3000, Prometheus :9095, Jaeger :16686 on localhost from the cluster; Ctrl-C stops
	@trap 'kill $$(jobs -p) 2>/dev/null' INT TERM EXIT; \
	kubectl -n $(K8S_NAMESPACE) port-forward svc/grafana 3000:3000 & \
	kubectl -n $(K8S_NAMESPACE) port-forward svc/prometheus 9095:9090 & \
	kubectl -n $(K8S_NAMESPACE) port-forward svc/jaeger 16686:16686 & \
	echo "  Grafana http://localhost:3000/  Prometheus http://localhost:9095/  Jaeger http://localhost:16686/"; \
	wait

.PHONY: k8s-render
k8s-render: k8s-secrets ## Render every overlay into $(RUN_DIR)/k8s/<overlay>.yaml
	@mkdir -p $(RUN_DIR)/k8s
	@for o in kind minikube; do kubectl kustomize k8s/overlays/$$o > $(RUN_DIR)/k8s/$$o.yaml || exit 1; \
	  echo "k8s/overlays/$$o: $$(grep -c '^kind:' $(RUN_DIR)/k8s/$$o.yaml) objects"; done

.PHONY: k8s-lint
k8s-lint: k8s-render ## Checkov over the rendered overlays, offline (skips justified in k8s/checkov.yaml)
	BC_SKIP_MAPPING=TRUE checkov --config-file k8s/checkov.yaml --skip-download -d $(RUN_DIR)/k8s

.PHONY: k8s-verify
k8s-verify: k8s-render k8s-lint ## Manifests: strict schemas, restricted PSS, policies, budgets; rehearsal of every Deployment
	$(CARGO) build --release --bins
	cd k8s/tests && $(PYTHON) -m pytest -q -p no:cacheprovider test_manifests.py test_rehearsal.py

.PHONY: k8s-containers
k8s-containers: k8s-secrets ## The image on a local base, the suite as read-only non-root containers on a private network
	@DOCKER=$(DOCKER) k8s/scripts/ensure-dockerd.sh
	@DOCKER=$(DOCKER) k8s/scripts/local-base-image.sh $(LOCAL_BASE_IMAGE)
	$(MAKE) --no-print-directory images PREBUILT=1 RUNTIME_IMAGE=$(LOCAL_BASE_IMAGE)
	cd k8s/tests && DOCKER=$(DOCKER) BOOKSTORE_IMAGE=$(IMAGE) $(PYTHON) -m pytest -q -s -p no:cacheprovider test_containers.py

.PHONY: k8s-measure
k8s-measure: ## Idle and loaded RSS/CPU of every service as its manifest runs it (sizes the resources)
	$(CARGO) build --release --bins
	$(PYTHON) k8s/scripts/measure.py
