# metrics-operator: see README.md. Every target installs what it needs from
# the Go module proxy; nothing has to be set up by hand.

SHELL := /usr/bin/env bash
.SHELLFLAGS := -eu -o pipefail -c

GO ?= go
GOLANGCI_LINT_VERSION ?= v2.15.0
TOOLS_DIR := bin/tools
GOLANGCI_LINT := $(TOOLS_DIR)/golangci-lint-$(GOLANGCI_LINT_VERSION)
TEST_FLAGS ?=
# Each package's test binary may run this long (go test's own default is
# 10m): the end-to-end suites in LATENCY_PKGS start several operators and
# control planes and take 9-10 minutes on a shared 2-core machine.
TEST_TIMEOUT ?= 30m
# make test runs the race detector over every package but the end-to-end
# suites in LATENCY_PKGS: those assert latencies against real processes
# (a change within 1 s, a delete within 2 s over 20,000 objects), which
# the detector's slowdown breaks on a shared 2-core machine; they run
# without it. RACE= turns it off everywhere for a quick local run.
RACE ?= -race
LATENCY_PKGS := ./internal/controllers ./internal/operator ./internal/reliability

.PHONY: all
all: build

##@ Development

.PHONY: generate
generate: ## Regenerate deepcopy code and CRDs from api/.
	$(GO) tool controller-gen object paths=./api/...
	$(GO) tool controller-gen crd paths=./api/... output:crd:artifacts:config=config/crd/bases
	$(GO) tool controller-gen rbac:roleName=metrics-operator paths=./internal/... output:rbac:artifacts:config=config/rbac
	@$(MAKE) --no-print-directory chart-sync

CHART := charts/metrics-operator

.PHONY: chart-sync
chart-sync: ## Copy the CRDs and RBAC of config/ into the Helm chart (part of generate).
	rm -f $(CHART)/crds/*.yaml $(CHART)/files/rbac/*.yaml
	cp config/crd/bases/*.yaml $(CHART)/crds/
	find config/rbac -maxdepth 1 -name '*.yaml' ! -name kustomization.yaml -exec cp {} $(CHART)/files/rbac/ \;

.PHONY: verify-generated
verify-generated: ## Fail when committed generated files are stale.
	hack/verify-generated.sh

.PHONY: fmt
fmt:
	$(GO) fmt ./...

.PHONY: vet
vet:
	$(GO) vet ./...
	cd $(DEPLOYTEST) && $(GO) vet ./...
	cd $(PLOT) && $(GO) vet ./...

.PHONY: lint
lint: $(GOLANGCI_LINT) ## Run golangci-lint with .golangci.yml.
	$(GOLANGCI_LINT) run ./...
	cd $(DEPLOYTEST) && $(CURDIR)/$(GOLANGCI_LINT) run ./...
	cd $(PLOT) && $(CURDIR)/$(GOLANGCI_LINT) run ./...

$(GOLANGCI_LINT):
	mkdir -p $(TOOLS_DIR)
	GOBIN=$(CURDIR)/$(TOOLS_DIR) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv $(TOOLS_DIR)/golangci-lint $(GOLANGCI_LINT)

##@ Build

.PHONY: build
build: ## Build bin/metrics-operator.
	$(GO) build -o bin/metrics-operator ./cmd/metrics-operator

IMAGE ?= metrics-operator:dev
IMAGE_ARCH ?= $(shell $(GO) env GOARCH)

.PHONY: image
image: ## Build the operator's OCI image (static binary, non-root, no base) into bin/image.tar; no container engine needed.
	$(GO) run ./hack/image --out bin/image.tar --tag $(IMAGE) --arch $(IMAGE_ARCH) $(IMAGE_FLAGS)

.PHONY: controlplane
controlplane: ## Build kube-apiserver, etcd and kubectl (cached); prints their directory.
	@hack/controlplane.sh

##@ Test

.PHONY: test
test: verify-generated vet ## Unit and envtest integration tests against a real API server (-race but for LATENCY_PKGS).
	export KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)"; \
	$(GO) test -timeout $(TEST_TIMEOUT) $(RACE) $(TEST_FLAGS) $$($(GO) list ./... | grep -v $(foreach p,$(LATENCY_PKGS),-e '$(p:./%=/%)$$')); \
	$(GO) test -timeout $(TEST_TIMEOUT) $(TEST_FLAGS) $(LATENCY_PKGS); \
	(cd $(PLOT) && $(GO) test $(TEST_FLAGS) ./...); \
	cd $(DEPLOYTEST) && $(GO) test $(TEST_FLAGS) ./...

# The chart, alert and dashboard tests are a module of their own (Helm and
# Prometheus as libraries stay out of the operator's go.mod).
DEPLOYTEST := hack/deploytest

.PHONY: test-deploy
test-deploy: ## Helm lint and server-side dry run of the chart; alerts and dashboard against a real /metrics.
	export KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)"; \
	cd $(DEPLOYTEST) && $(GO) test $(TEST_FLAGS) ./...

.PHONY: test-unit
test-unit: ## Tests that need no control plane.
	$(GO) test -short ./...
	cd $(DEPLOYTEST) && $(GO) test -short ./...

##@ Run

.PHONY: demo
demo: build ## Local control plane, sample objects and metrics, the operator and an OTLP receiver.
	$(GO) build -o bin/demo-env ./hack/demo
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" bin/demo-env $(DEMO_FLAGS)

.PHONY: bench
bench: build ## Benchmark polling vs event-driven against a local control plane; writes docs/benchmarks.md, docs/bench/ and the plots.
	$(GO) build -o bin/bench ./hack/bench
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" bin/bench $(BENCH_FLAGS)
	@$(MAKE) --no-print-directory plots

# The plots are drawn by a module of their own (the plotting library stays
# out of the operator's go.mod).
PLOT := hack/plot

.PHONY: plots
plots: ## Draw docs/bench-*.svg from the benchmark data in docs/bench.
	cd $(PLOT) && $(GO) run . -data $(CURDIR)/docs/bench -out $(CURDIR)/docs

.PHONY: bench-quick
bench-quick: build ## A small benchmark (under 3 minutes) for catching regressions; prints the table only.
	$(GO) build -o bin/bench ./hack/bench
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" bin/bench --objects=1000 --metrics=1,10 --writes-per-second=100 \
		--duration=15s --warmup=2s --probes=50 --ready-timeout=60s --settle-timeout=10s --out= $(BENCH_FLAGS)

SOAK_DURATION ?= 10m

.PHONY: soak
soak: build ## Soak the operator for SOAK_DURATION (10m): churn, a flapping sink, an API server restart; it must end at its baseline with every value right.
	$(GO) build -o bin/bench ./hack/bench
	KUBEBUILDER_ASSETS="$$(hack/controlplane.sh)" bin/bench --soak $(SOAK_DURATION) $(SOAK_FLAGS)

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"} /^[a-zA-Z_-]+:.*?##/ { printf "  %-18s %s\n", $$1, $$2 } /^##@/ { printf "\n%s\n", substr($$0, 5) }' $(MAKEFILE_LIST)
