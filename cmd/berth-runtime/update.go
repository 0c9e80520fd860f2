package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/cli"
	"github.com/berthproject/berth/internal/units"
)

func updateCmd(g *globals) *cli.Command {
	var resFile string
	var (
		memory, memRes, memSwap           string
		pidsLimit, cpuQuota, cpuRtRuntime int64
		cpuShares, cpuPeriod, cpuRtPeriod uint64
		cpusetCpus, cpusetMems            string
		blkioWeight                       uint16
	)
	cmd := &cli.Command{
		Use:   "update [flags] CONTAINER_ID",
		Short: "change the resource limits of a container",
		Args:  exactArgs(1, "CONTAINER_ID"),
		RunE: func(cmd *cli.Command, args []string) error {
			var res specs.LinuxResources
			if resFile != "" {
				var in io.Reader = os.Stdin
				if resFile != "-" {
					f, err := os.Open(resFile)
					if err != nil {
						return fmt.Errorf("--resources: %w", err)
					}
					defer f.Close()
					in = f
				}
				if err := json.NewDecoder(in).Decode(&res); err != nil {
					return fmt.Errorf("--resources %s: %w", resFile, err)
				}
			}
			fl := cmd.Flags()
			mem := func() *specs.LinuxMemory {
				if res.Memory == nil {
					res.Memory = &specs.LinuxMemory{}
				}
				return res.Memory
			}
			cpu := func() *specs.LinuxCPU {
				if res.CPU == nil {
					res.CPU = &specs.LinuxCPU{}
				}
				return res.CPU
			}
			for _, m := range []struct {
				flag, val string
				dst       **int64
			}{
				{"memory", memory, &mem().Limit},
				{"memory-reservation", memRes, &mem().Reservation},
				{"memory-swap", memSwap, &mem().Swap},
			} {
				if !fl.Changed(m.flag) {
					continue
				}
				v, err := units.RAMInBytes(m.val)
				if err != nil {
					return fmt.Errorf("--%s: %w", m.flag, err)
				}
				*m.dst = &v
			}
			if res.Memory != nil && res.Memory.Limit == nil && res.Memory.Reservation == nil && res.Memory.Swap == nil && resFile == "" {
				res.Memory = nil
			}
			if fl.Changed("cpu-shares") {
				cpu().Shares = &cpuShares
			}
			if fl.Changed("cpu-quota") {
				cpu().Quota = &cpuQuota
			}
			if fl.Changed("cpu-period") {
				cpu().Period = &cpuPeriod
			}
			if fl.Changed("cpu-rt-runtime") {
				cpu().RealtimeRuntime = &cpuRtRuntime
			}
			if fl.Changed("cpu-rt-period") {
				cpu().RealtimePeriod = &cpuRtPeriod
			}
			if fl.Changed("cpuset-cpus") {
				cpu().Cpus = cpusetCpus
			}
			if fl.Changed("cpuset-mems") {
				cpu().Mems = cpusetMems
			}
			if fl.Changed("pids-limit") {
				res.Pids = &specs.LinuxPids{Limit: &pidsLimit}
			}
			if fl.Changed("blkio-weight") {
				res.BlockIO = &specs.LinuxBlockIO{Weight: &blkioWeight}
			}
			r, err := g.runtime()
			if err != nil {
				return err
			}
			return r.Update(args[0], &res)
		},
	}
	f := cmd.Flags()
	f.StringVarP(&resFile, "resources", "r", "", "path to a JSON file of linux.resources (\"-\" for stdin)")
	f.StringVar(&memory, "memory", "", "memory limit (bytes, or with a unit: 64m, 1g; -1: unlimited)")
	f.StringVar(&memRes, "memory-reservation", "", "memory reservation (soft limit), like --memory")
	f.StringVar(&memSwap, "memory-swap", "", "memory plus swap limit, like --memory (-1: unlimited)")
	f.Int64Var(&pidsLimit, "pids-limit", 0, "maximum number of processes (-1 or 0: unlimited)")
	f.Uint64Var(&cpuShares, "cpu-shares", 0, "CPU shares (relative weight)")
	f.Int64Var(&cpuQuota, "cpu-quota", 0, "CPU CFS quota in microseconds per period (-1: unlimited)")
	f.Uint64Var(&cpuPeriod, "cpu-period", 0, "CPU CFS period in microseconds")
	f.Int64Var(&cpuRtRuntime, "cpu-rt-runtime", 0, "realtime runtime in microseconds")
	f.Uint64Var(&cpuRtPeriod, "cpu-rt-period", 0, "realtime period in microseconds")
	f.StringVar(&cpusetCpus, "cpuset-cpus", "", "CPUs allowed (0-3, 0,1)")
	f.StringVar(&cpusetMems, "cpuset-mems", "", "memory nodes allowed (0-3, 0,1)")
	f.Uint16Var(&blkioWeight, "blkio-weight", 0, "block I/O weight (10-1000)")
	return cmd
}
