# The local contract (DESIGN.md, Local contract). Every target brings up what
# it needs through scripts/up.sh, so each works from a fresh clone.
ROWS ?= 500000
SEED ?= 1
SECS ?= 60

.PHONY: demo test up down seed serve web bench fuzz package fmt lint

demo: ## up, seed the demo ledger (a heavy treaty of 100K+ rows), print what was loaded
	bash scripts/demo.sh

test: ## fmt check, clippy, every test against the real PostgreSQL and moto
	bash scripts/test.sh

up: ## start PostgreSQL (if needed) and moto, apply migrations, write .dev/env
	bash scripts/up.sh

down: ## stop what `make up` started
	bash scripts/down.sh

seed: up ## load ROWS generated rows in total (idempotent)
	bash scripts/seed.sh $(ROWS) $(SEED)

web: ## the reference grid (web/): npm ci, unit tests, build into web/dist (served at /app/)
	bash scripts/web.sh

serve: ## the API on CLEARANCE_ADDR (default 127.0.0.1:8080), dev identity headers
	bash scripts/serve.sh

bench: up ## measure the figures, write docs/bench/results.json
	bash scripts/bench.sh

fuzz: ## every fuzz target (cargo-fuzz, nightly) for SECS seconds each (default 60); fails on a crash
	SECS=$(SECS) bash scripts/fuzz.sh

package: ## the deployable zips of every function (cargo-lambda, arm64), with their sizes
	bash scripts/package.sh

fmt:
	cargo fmt --all

lint:
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
