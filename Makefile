# berth build. `make` builds every binary into ./bin/.
GO      ?= go
# The runtime carries a small C constructor (internal/nsenter); it is linked
# statically so that exec of the runtime skips the dynamic loader.
CGO_ENABLED := 1
LDFLAGS := -s -w -extldflags=-static
GOFLAGS_BUILD := -trimpath -buildvcs=false -tags netgo,osusergo

BINS := bin/berth-runtime bin/berth bin/berth-shim bin/berth-init bin/berth-dns

.PHONY: all clean test test-unit vet fmt
all: $(BINS)

bin/berth-runtime: FORCE
	CGO_ENABLED=$(CGO_ENABLED) $(GO) build $(GOFLAGS_BUILD) -ldflags '$(LDFLAGS)' -o $@ ./cmd/berth-runtime

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

bin/berth-init: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $@ ./cmd/berth-init

# The embedded DNS server of user-defined networks (started on demand).
bin/berth-dns: FORCE
	CGO_ENABLED=0 $(GO) build $(GOFLAGS_BUILD) -ldflags '-s -w' -o $@ ./cmd/berth-dns
