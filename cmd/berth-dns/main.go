// Command berth-dns is the embedded DNS server of berth's user-defined
// networks: one small long-lived process per host, started on demand by the
// berth command when a container joins a user-defined network (see package
// internal/network/dns for what it answers and how it stays current).
//
//	berth-dns --records ROOT/network --run STATE/network [--resolv-conf FILE] [--port N] [--idle-exit 30s] [--debug]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/berthproject/berth/internal/network/dns/server"
)

func main() {
	var cfg server.ServerConfig
	var port uint
	var debug bool
	flag.StringVar(&cfg.Records, "records", "", "network records directory")
	flag.StringVar(&cfg.Run, "run", "", "run directory (lock, pid file, control socket)")
	flag.StringVar(&cfg.HostResolvConf, "resolv-conf", "/etc/resolv.conf", "the host's resolvers")
	flag.UintVar(&port, "port", 53, "DNS port on the gateways")
	flag.BoolVar(&debug, "debug", false, "log every failed upstream query")
	flag.DurationVar(&cfg.IdleExit, "idle-exit", 30*time.Second, "exit once no user-defined network has had containers for this long (0: never)")
	flag.Parse()
	if cfg.Records == "" || cfg.Run == "" || port == 0 || port > 65535 {
		fmt.Fprintln(os.Stderr, "berth-dns: --records and --run are required, --port must be 1-65535")
		os.Exit(2)
	}
	cfg.Port = uint16(port)
	level := slog.LevelInfo
	if debug {
		level = slog.LevelDebug
	}
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	err := server.Serve(ctx, cfg)
	if errors.Is(err, server.ErrRunning) {
		cfg.Log.Info("another server runs already; exiting")
		return
	}
	if err != nil {
		cfg.Log.Error("berth-dns", "err", err)
		os.Exit(1)
	}
}
