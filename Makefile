# The two commands a fresh machine needs: `make run` and `make test`.
GO ?= go
export PATH := $(PATH):/usr/local/go/bin
CONFIG ?= eddy.yaml

.PHONY: build run test services bench fuzz

build:
	$(GO) build -o bin/eddy ./cmd/eddy

# Builds Eddy and runs the server with $(CONFIG) (default eddy.yaml).
run: build
	./bin/eddy run -c $(CONFIG)

# Prepares PostgreSQL and MariaDB (idempotent), then runs every check and test.
test: services
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 14m ./...

services:
	bash scripts/test-services.sh

# Performance figures of the log on this machine.
bench: build
	./bin/eddy bench log
	$(GO) test -run '^$$' -bench . -benchtime 2s ./log/
	$(GO) test -run '^$$' -bench . -benchtime 2s ./registry/
	$(GO) test -run '^$$' -bench . -benchtime 200000x ./connect/
	$(GO) test -run '^$$' -bench Postgres -benchtime 1x ./integration/
	$(GO) test -run '^$$' -bench S3Sink -benchtime 1x ./integration/
	$(GO) test -run '^$$' -bench Archive -benchtime 1x ./log/s3store/

fuzz:
	$(GO) test -run '^$$' -fuzz FuzzDecodeBatches -fuzztime 5m ./log/
