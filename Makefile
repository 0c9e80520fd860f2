# berth build. `make` builds every binary into ./bin/.
GO      ?= go
CC      ?= cc
GOFLAGS_BUILD := -trimpath -buildvcs=false -tags netgo,osusergo

BINS := bin/berth-runtime bin/berth-nsenter bin/berth bin/berth-shim bin/berth-shim-idle bin/berth-init bin/berth-dns

.PHONY: all clean test test-unit vet fmt
all: $(BINS)

# The runtime is pure Go; its namespace stage is the small static C program
# berth-nsenter, installed next to it (internal/nsenter explains why).
bin/berth-runtime: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $@ ./cmd/berth-runtime

bin/berth-nsenter: cmd/berth-nsenter/nsenter.c
	@mkdir -p bin
	$(CC) -static -O2 -Wall -Wextra -s -o $@ $<

FORCE:

test-unit:
	$(GO) test ./...

vet:
	$(GO) vet ./...

fmt:
	gofmt -l -w $$(git ls-files '*.go')

clean:
	rm -rf bin

bin/berth: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $@ ./cmd/berth

# The monitor and the init are small static Go programs without cgo.
bin/berth-shim: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $@ ./cmd/berth-shim

# The monitor's idle state: a small static C program berth-shim executes in
# its own process while nothing needs the Go side (cmd/berth-shim/idle.go).
bin/berth-shim-idle: cmd/berth-shim-idle/idle.c
	@mkdir -p bin
	$(CC) -static -O2 -Wall -Wextra -s -o $@ $<

bin/berth-init: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $@ ./cmd/berth-init

# The embedded DNS server of user-defined networks (started on demand).
bin/berth-dns: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $@ ./cmd/berth-dns
