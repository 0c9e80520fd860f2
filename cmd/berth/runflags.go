package main

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	units "github.com/docker/go-units"
	"github.com/moby/moby/api/types/blkiodev"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/network"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	berthunits "github.com/berthproject/berth/internal/units"
)

// runFlags are the flags of `run` and `create`, as Docker spells them.
type runFlags struct {
	detach, interactive, tty, rm, init, readOnly, privileged, publishAll, oomKillDisable         bool
	name, workdir, user, entrypoint, hostname, domainname, restart, stopSignal, pull, platform   string
	pid, ipc, uts, cgroupns, userns, network, macAddress, ip, detachKeys, cgroupParent, runtime  string
	memory, memorySwap, memoryReservation, shmSize, cpus, cpusetCpus, cpusetMems                 string
	stopTimeout, cpuShares, cpuQuota, cpuPeriod, pidsLimit, oomScoreAdj, memorySwappiness        int64
	blkioWeight                                                                                  uint16
	env, envFile, labels, volumes, mounts, tmpfs, capAdd, capDrop, securityOpt, devices          []string
	ulimits, publish, expose, dns, dnsSearch, dnsOption, addHost, networkAlias, groupAdd, sysctl []string
	volumesFrom, deviceReadBps, deviceWriteBps, deviceReadIOps, deviceWriteIOps, logOpt          []string
	deviceCgroupRules, attach, links                                                             []string
	logDriver                                                                                    string
	ip6                                                                                          string
	quiet                                                                                        bool // no pull output
}

// networking turns --ip, --ip6, --network-alias and --mac-address into the
// endpoint settings of the network --network names, as Docker's CLI sends
// them.
func (f *runFlags) networking() (*network.NetworkingConfig, error) {
	s := &network.EndpointSettings{Aliases: f.networkAlias}
	for _, a := range []struct{ flag, v string }{{"--ip", f.ip}, {"--ip6", f.ip6}} {
		if a.v == "" {
			continue
		}
		ip, err := netip.ParseAddr(a.v)
		if err != nil || (a.flag == "--ip") != ip.Is4() {
			return nil, fmt.Errorf("%s: %q is not an IPv%s address", a.flag, a.v, map[bool]string{true: "4", false: "6"}[a.flag == "--ip"])
		}
		if s.IPAMConfig == nil {
			s.IPAMConfig = &network.EndpointIPAMConfig{}
		}
		if a.flag == "--ip" {
			s.IPAMConfig.IPv4Address = ip
		} else {
			s.IPAMConfig.IPv6Address = ip
		}
	}
	if f.macAddress != "" {
		mac, err := net.ParseMAC(f.macAddress)
		if err != nil || len(mac) != 6 {
			return nil, fmt.Errorf("--mac-address: %q is not a MAC address", f.macAddress)
		}
		s.MacAddress = network.HardwareAddr(mac)
	}
	if s.IPAMConfig == nil && len(s.Aliases) == 0 && s.MacAddress == nil {
		return nil, nil
	}
	name := f.network
	if name == "" || name == "default" {
		name = "bridge"
	}
	return &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{name: s}}, nil
}

func (f *runFlags) register(fs *pflag.FlagSet, withDetach bool) {
	fs.SetInterspersed(false)
	if withDetach {
		fs.BoolVarP(&f.detach, "detach", "d", false, "run in the background and print the container id")
		fs.StringVar(&f.detachKeys, "detach-keys", "", "key sequence for detaching (default ctrl-p,ctrl-q)")
		fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	} else {
		fs.BoolVar(&f.rm, "rm", false, "remove the container when it exits")
	}
	stringArrayVarP(fs, &f.attach, "attach", "a", "attach to STDIN, STDOUT or STDERR")
	fs.BoolVarP(&f.interactive, "interactive", "i", false, "keep stdin open")
	fs.BoolVarP(&f.tty, "tty", "t", false, "allocate a pseudo-terminal")
	fs.StringVar(&f.name, "name", "", "name of the container")
	stringArrayVarP(fs, &f.env, "env", "e", "set an environment variable (KEY=value, or KEY to take it from here)")
	stringArrayVarP(fs, &f.envFile, "env-file", "", "read environment variables from a file")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container (created if missing)")
	fs.StringVarP(&f.user, "user", "u", "", "user[:group] (names from the image's /etc/passwd)")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint")
	fs.StringVarP(&f.hostname, "hostname", "h", "", "container host name")
	fs.StringVar(&f.domainname, "domainname", "", "container NIS domain name")
	fs.BoolVar(&f.readOnly, "read-only", false, "mount the root filesystem read-only")
	stringArrayVarP(fs, &f.tmpfs, "tmpfs", "", "mount a tmpfs (DIR[:OPTIONS])")
	fs.BoolVar(&f.init, "init", false, "run an init as pid 1 that forwards signals and reaps processes")
	fs.StringVar(&f.restart, "restart", "no", "restart policy: no, on-failure[:N], always, unless-stopped")
	fs.StringVar(&f.stopSignal, "stop-signal", "", "signal to stop the container")
	fs.Int64Var(&f.stopTimeout, "stop-timeout", -1, "seconds to wait for the stop signal before killing")
	stringArrayVarP(fs, &f.labels, "label", "l", "set a label (KEY=value)")
	stringArrayVarP(fs, &f.capAdd, "cap-add", "", "add a Linux capability")
	stringArrayVarP(fs, &f.capDrop, "cap-drop", "", "drop a Linux capability")
	fs.BoolVar(&f.privileged, "privileged", false, "give extended privileges to the container")
	stringArrayVarP(fs, &f.securityOpt, "security-opt", "", "seccomp=PROFILE|unconfined, no-new-privileges")
	stringArrayVarP(fs, &f.devices, "device", "", "add a host device (HOST[:CONTAINER[:rwm]])")
	stringArrayVarP(fs, &f.deviceCgroupRules, "device-cgroup-rule", "", "add a rule to the device cgroup")
	stringArrayVarP(fs, &f.ulimits, "ulimit", "", "ulimit (name=soft[:hard])")
	fs.StringVar(&f.pid, "pid", "", "pid namespace: host or container:NAME")
	fs.StringVar(&f.ipc, "ipc", "", "ipc namespace: private, shareable, host or container:NAME")
	fs.StringVar(&f.uts, "uts", "", "uts namespace: host")
	fs.StringVar(&f.cgroupns, "cgroupns", "", "cgroup namespace: private or host")
	fs.StringVar(&f.userns, "userns", "", "user namespace: host, or auto")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit (e.g. 256m)")
	fs.StringVar(&f.memorySwap, "memory-swap", "", "memory plus swap limit (-1: unlimited swap)")
	fs.StringVar(&f.memoryReservation, "memory-reservation", "", "memory soft limit")
	fs.Int64Var(&f.memorySwappiness, "memory-swappiness", -1, "memory swappiness (0-100)")
	fs.BoolVar(&f.oomKillDisable, "oom-kill-disable", false, "disable the OOM killer")
	fs.Int64Var(&f.oomScoreAdj, "oom-score-adj", 0, "OOM score adjustment (-1000 to 1000)")
	fs.StringVar(&f.cpus, "cpus", "", "number of CPUs (e.g. 1.5)")
	fs.Int64VarP(&f.cpuShares, "cpu-shares", "c", 0, "CPU shares (relative weight)")
	fs.Int64Var(&f.cpuQuota, "cpu-quota", 0, "CPU CFS quota (microseconds)")
	fs.Int64Var(&f.cpuPeriod, "cpu-period", 0, "CPU CFS period (microseconds)")
	fs.StringVar(&f.cpusetCpus, "cpuset-cpus", "", "CPUs allowed (0-3, 0,1)")
	fs.StringVar(&f.cpusetMems, "cpuset-mems", "", "memory nodes allowed (0-3, 0,1)")
	fs.Int64Var(&f.pidsLimit, "pids-limit", 0, "maximum number of processes (-1: unlimited)")
	fs.Uint16Var(&f.blkioWeight, "blkio-weight", 0, "block IO weight (10 to 1000)")
	stringArrayVarP(fs, &f.deviceReadBps, "device-read-bps", "", "limit read rate from a device (DEVICE:RATE)")
	stringArrayVarP(fs, &f.deviceWriteBps, "device-write-bps", "", "limit write rate to a device (DEVICE:RATE)")
	stringArrayVarP(fs, &f.deviceReadIOps, "device-read-iops", "", "limit read IO per second from a device")
	stringArrayVarP(fs, &f.deviceWriteIOps, "device-write-iops", "", "limit write IO per second to a device")
	fs.StringVar(&f.shmSize, "shm-size", "", "size of /dev/shm (default 64m)")
	stringArrayVarP(fs, &f.volumes, "volume", "v", "bind mount or volume (SRC:DST[:OPTIONS])")
	stringArrayVarP(fs, &f.mounts, "mount", "", "mount (type=bind|volume|tmpfs,source=,target=,...)")
	stringArrayVarP(fs, &f.volumesFrom, "volumes-from", "", "mount the volumes of another container (NAME[:ro|rw])")
	fs.StringVar(&f.network, "network", "", "network: bridge, host, none, container:NAME or a network name")
	fs.StringVar(&f.network, "net", "", "same as --network")
	stringArrayVarP(fs, &f.publish, "publish", "p", "publish a port ([IP:][HOST:]CONTAINER[/PROTO])")
	fs.BoolVarP(&f.publishAll, "publish-all", "P", false, "publish every exposed port to a random host port")
	stringArrayVarP(fs, &f.expose, "expose", "", "expose a port or a range")
	stringArrayVarP(fs, &f.dns, "dns", "", "DNS server")
	stringArrayVarP(fs, &f.dnsSearch, "dns-search", "", "DNS search domain")
	stringArrayVarP(fs, &f.dnsOption, "dns-option", "", "DNS option")
	stringArrayVarP(fs, &f.addHost, "add-host", "", "add a host:ip line to /etc/hosts")
	fs.StringVar(&f.macAddress, "mac-address", "", "container MAC address")
	fs.StringVar(&f.ip, "ip", "", "IPv4 address on the network")
	fs.StringVar(&f.ip6, "ip6", "", "IPv6 address on the network")
	stringArrayVarP(fs, &f.networkAlias, "network-alias", "", "network-scoped alias")
	stringArrayVarP(fs, &f.links, "link", "", "legacy link to another container (NAME[:ALIAS])")
	stringArrayVarP(fs, &f.groupAdd, "group-add", "", "additional group")
	stringArrayVarP(fs, &f.sysctl, "sysctl", "", "namespaced kernel parameter (KEY=VALUE)")
	fs.StringVar(&f.pull, "pull", "missing", "pull the image: missing, always or never")
	fs.BoolVarP(&f.quiet, "quiet", "q", false, "suppress the pull output")
	fs.StringVar(&f.platform, "platform", "", "platform of the image (os/arch[/variant])")
	fs.StringVar(&f.cgroupParent, "cgroup-parent", "", "parent cgroup of the container")
	fs.StringVar(&f.runtime, "runtime", "", "OCI runtime for this container")
	fs.StringVar(&f.logDriver, "log-driver", "json-file", "logging driver (json-file, none)")
	stringArrayVarP(fs, &f.logOpt, "log-opt", "", "logging option (max-size=10m, max-file=3)")
}

// config turns the flags and the positional arguments (IMAGE [CMD...])
// into Docker's container configuration. Errors name the flag.
func (f *runFlags) config(fs *pflag.FlagSet, args []string) (*container.Config, *container.HostConfig, error) {
	if len(args) == 0 {
		return nil, nil, fmt.Errorf("\"run\" requires at least 1 argument: IMAGE [COMMAND] [ARG...]")
	}
	cfg := &container.Config{
		Image: args[0], Tty: f.tty, OpenStdin: f.interactive, StdinOnce: f.interactive && !f.detach,
		AttachStdin: f.interactive && !f.detach, AttachStdout: !f.detach, AttachStderr: !f.detach,
		WorkingDir: f.workdir, User: f.user, Hostname: f.hostname, Domainname: f.domainname, StopSignal: f.stopSignal,
	}
	if len(args) > 1 {
		cfg.Cmd = args[1:]
	}
	if fs.Changed("entrypoint") {
		cfg.Entrypoint = []string{}
		if f.entrypoint != "" {
			cfg.Entrypoint = []string{f.entrypoint}
		}
	}
	if f.stopTimeout >= 0 {
		t := int(f.stopTimeout)
		cfg.StopTimeout = &t
	}
	if f.workdir != "" && !filepath.IsAbs(f.workdir) {
		return nil, nil, fmt.Errorf("--workdir: %q is not an absolute path", f.workdir)
	}
	env, err := f.environment()
	if err != nil {
		return nil, nil, err
	}
	cfg.Env = env
	if cfg.Labels, err = keyValues("--label", f.labels, true); err != nil {
		return nil, nil, err
	}
	host := &container.HostConfig{
		AutoRemove: f.rm, ReadonlyRootfs: f.readOnly, Privileged: f.privileged, PublishAllPorts: f.publishAll,
		CapAdd: f.capAdd, CapDrop: f.capDrop, SecurityOpt: f.securityOpt, Binds: f.volumes, VolumesFrom: f.volumesFrom,
		GroupAdd: f.groupAdd, ExtraHosts: f.addHost, Links: f.links, DNSSearch: f.dnsSearch, DNSOptions: f.dnsOption,
		OomScoreAdj: int(f.oomScoreAdj), Runtime: f.runtime,
		PidMode: container.PidMode(f.pid), IpcMode: container.IpcMode(f.ipc), UTSMode: container.UTSMode(f.uts),
		CgroupnsMode: container.CgroupnsMode(f.cgroupns), UsernsMode: container.UsernsMode(f.userns),
		NetworkMode: container.NetworkMode(f.network),
		LogConfig:   container.LogConfig{Type: f.logDriver},
	}
	if f.init {
		t := true
		host.Init = &t
	}
	if f.securityOpt, err = readSeccompProfiles(f.securityOpt); err != nil {
		return nil, nil, err
	}
	host.SecurityOpt = f.securityOpt
	for _, d := range f.dns {
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, nil, fmt.Errorf("--dns: %q is not an IP address", d)
		}
		host.DNS = append(host.DNS, a)
	}
	if host.LogConfig.Config, err = keyValues("--log-opt", f.logOpt, false); err != nil {
		return nil, nil, err
	}
	if host.Sysctls, err = keyValues("--sysctl", f.sysctl, false); err != nil {
		return nil, nil, err
	}
	if host.RestartPolicy, err = parseRestart(f.restart); err != nil {
		return nil, nil, err
	}
	if host.RestartPolicy.Name != container.RestartPolicyDisabled && f.rm {
		return nil, nil, fmt.Errorf("--restart: conflicting options: cannot specify both --restart and --rm")
	}
	if len(f.tmpfs) > 0 {
		host.Tmpfs = map[string]string{}
		for _, t := range f.tmpfs {
			dst, opts, _ := strings.Cut(t, ":")
			if !filepath.IsAbs(dst) {
				return nil, nil, fmt.Errorf("--tmpfs: %q: the mount point must be absolute", t)
			}
			host.Tmpfs[dst] = opts
		}
	}
	for _, v := range f.volumes {
		if err := checkVolumeSpec(v); err != nil {
			return nil, nil, err
		}
	}
	for _, m := range f.mounts {
		mt, err := parseMount(m)
		if err != nil {
			return nil, nil, err
		}
		host.Mounts = append(host.Mounts, mt)
	}
	if err := f.resources(fs, &host.Resources); err != nil {
		return nil, nil, err
	}
	if host.ShmSize, err = size("--shm-size", f.shmSize); err != nil {
		return nil, nil, err
	}
	ports, bindings, err := parsePorts(f.publish, f.expose)
	if err != nil {
		return nil, nil, err
	}
	cfg.ExposedPorts, host.PortBindings = ports, bindings
	return cfg, host, nil
}

func size(flag, s string) (int64, error) {
	if s == "" {
		return 0, nil
	}
	v, err := berthunits.RAMInBytes(s)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", flag, err)
	}
	return v, nil
}

func (f *runFlags) resources(fs *pflag.FlagSet, r *container.Resources) error {
	var err error
	if r.Memory, err = size("--memory", f.memory); err != nil {
		return err
	}
	if r.Memory != 0 && r.Memory < 6*1024*1024 {
		return fmt.Errorf("--memory: minimum memory limit allowed is 6MB")
	}
	if r.MemoryReservation, err = size("--memory-reservation", f.memoryReservation); err != nil {
		return err
	}
	if f.memorySwap != "" {
		if f.memorySwap == "-1" {
			r.MemorySwap = -1
		} else if r.MemorySwap, err = size("--memory-swap", f.memorySwap); err != nil {
			return err
		} else if r.Memory > 0 && r.MemorySwap < r.Memory {
			return fmt.Errorf("--memory-swap: must be at least --memory (%d < %d)", r.MemorySwap, r.Memory)
		}
		if r.Memory == 0 && r.MemorySwap > 0 {
			return fmt.Errorf("--memory-swap: needs --memory")
		}
	}
	if f.memorySwappiness >= 0 {
		if f.memorySwappiness > 100 {
			return fmt.Errorf("--memory-swappiness: %d is outside 0..100", f.memorySwappiness)
		}
		v := f.memorySwappiness
		r.MemorySwappiness = &v
	}
	if fs.Changed("oom-kill-disable") {
		v := f.oomKillDisable
		r.OomKillDisable = &v
	}
	if f.cpus != "" {
		v, err := strconv.ParseFloat(f.cpus, 64)
		if err != nil || v <= 0 {
			return fmt.Errorf("--cpus: %q is not a positive number", f.cpus)
		}
		r.NanoCPUs = int64(v * 1e9)
		if f.cpuQuota != 0 || f.cpuPeriod != 0 {
			return fmt.Errorf("--cpus: conflicts with --cpu-quota and --cpu-period")
		}
	}
	r.CPUShares, r.CPUQuota, r.CPUPeriod = f.cpuShares, f.cpuQuota, f.cpuPeriod
	r.CpusetCpus, r.CpusetMems = f.cpusetCpus, f.cpusetMems
	if fs.Changed("pids-limit") {
		v := f.pidsLimit
		r.PidsLimit = &v
	}
	// The range is the engine's to check: as Docker's, it first discards
	// a weight the host cannot apply.
	r.BlkioWeight = f.blkioWeight
	r.CgroupParent = f.cgroupParent
	for _, x := range []struct {
		flag string
		in   []string
		out  *[]*blkiodev.ThrottleDevice
		iops bool
	}{
		{"--device-read-bps", f.deviceReadBps, &r.BlkioDeviceReadBps, false},
		{"--device-write-bps", f.deviceWriteBps, &r.BlkioDeviceWriteBps, false},
		{"--device-read-iops", f.deviceReadIOps, &r.BlkioDeviceReadIOps, true},
		{"--device-write-iops", f.deviceWriteIOps, &r.BlkioDeviceWriteIOps, true},
	} {
		for _, s := range x.in {
			td, err := parseThrottle(x.flag, s, x.iops)
			if err != nil {
				return err
			}
			*x.out = append(*x.out, td)
		}
	}
	for _, d := range f.devices {
		dm, err := parseDevice(d)
		if err != nil {
			return err
		}
		r.Devices = append(r.Devices, dm)
	}
	r.DeviceCgroupRules = f.deviceCgroupRules
	for _, u := range f.ulimits {
		ul, err := units.ParseUlimit(u)
		if err != nil {
			// Docker's wording, which names the limit at fault.
			return fmt.Errorf("invalid argument %q for \"--ulimit\" flag: %w", u, err)
		}
		r.Ulimits = append(r.Ulimits, ul)
	}
	return nil
}

// environment merges --env-file files and --env values; "KEY" alone takes
// the value from this process's environment (and is dropped if unset).
func (f *runFlags) environment() ([]string, error) {
	var out []string
	add := func(flag, kv string) error {
		k, _, hasValue := strings.Cut(kv, "=")
		if k == "" {
			return fmt.Errorf("%s: %q: invalid environment variable", flag, kv)
		}
		if !hasValue {
			v, ok := os.LookupEnv(k)
			if !ok {
				return nil
			}
			kv = k + "=" + v
		}
		out = append(out, kv)
		return nil
	}
	for _, file := range f.envFile {
		fh, err := os.Open(file)
		if err != nil {
			return nil, fmt.Errorf("--env-file: %w", err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			if line == "" || strings.HasPrefix(line, "#") {
				continue
			}
			if err := add("--env-file "+file, line); err != nil {
				fh.Close()
				return nil, err
			}
		}
		fh.Close()
		if err := sc.Err(); err != nil {
			return nil, fmt.Errorf("--env-file %s: %w", file, err)
		}
	}
	for _, e := range f.env {
		if err := add("--env", e); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func keyValues(flag string, list []string, allowBare bool) (map[string]string, error) {
	if len(list) == 0 {
		return nil, nil
	}
	m := map[string]string{}
	for _, kv := range list {
		k, v, ok := strings.Cut(kv, "=")
		if k == "" || (!ok && !allowBare) {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", flag, kv)
		}
		m[k] = v
	}
	return m, nil
}

func parseRestart(s string) (container.RestartPolicy, error) {
	name, count, hasCount := strings.Cut(s, ":")
	p := container.RestartPolicy{Name: container.RestartPolicyMode(name)}
	switch p.Name {
	case "", container.RestartPolicyDisabled:
		p.Name = container.RestartPolicyDisabled
	case container.RestartPolicyAlways, container.RestartPolicyUnlessStopped:
	case container.RestartPolicyOnFailure:
		if hasCount {
			n, err := strconv.Atoi(count)
			if err != nil || n < 0 {
				return p, fmt.Errorf("--restart: %q: the maximum retry count must be a non-negative number", s)
			}
			p.MaximumRetryCount = n
		}
		return p, nil
	default:
		return p, fmt.Errorf("--restart: invalid restart policy %q (want no, on-failure[:N], always or unless-stopped)", s)
	}
	if hasCount {
		return p, fmt.Errorf("--restart: %q: only on-failure takes a maximum retry count", s)
	}
	return p, nil
}

// checkVolumeSpec checks -v SRC:DST[:OPTS] (or a lone DST for an anonymous
// volume) without resolving anything.
func checkVolumeSpec(v string) error {
	parts := strings.Split(v, ":")
	if len(parts) > 3 || parts[0] == "" {
		return fmt.Errorf("--volume: invalid volume specification %q (want SRC:DST[:OPTIONS])", v)
	}
	dst := parts[0]
	if len(parts) >= 2 {
		dst = parts[1]
	}
	if !filepath.IsAbs(dst) {
		return fmt.Errorf("--volume: invalid volume specification %q: the destination %q must be absolute", v, dst)
	}
	if len(parts) == 3 {
		for _, o := range strings.Split(parts[2], ",") {
			switch o {
			case "ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy", "idmap":
			default:
				return fmt.Errorf("--volume: invalid volume specification %q: unknown option %q", v, o)
			}
		}
	}
	return nil
}

// parseMount reads --mount type=...,source=...,target=...,readonly,...
func parseMount(s string) (mount.Mount, error) {
	m := mount.Mount{Type: mount.TypeVolume}
	for _, field := range strings.Split(s, ",") {
		k, v, hasValue := strings.Cut(field, "=")
		switch strings.ToLower(k) {
		case "type":
			m.Type = mount.Type(v)
		case "source", "src":
			m.Source = v
		case "target", "destination", "dst":
			m.Target = v
		case "readonly", "ro":
			m.ReadOnly = !hasValue || v == "true" || v == "1"
		case "bind-propagation":
			if m.BindOptions == nil {
				m.BindOptions = &mount.BindOptions{}
			}
			m.BindOptions.Propagation = mount.Propagation(v)
		case "volume-nocopy":
			if m.VolumeOptions == nil {
				m.VolumeOptions = &mount.VolumeOptions{}
			}
			m.VolumeOptions.NoCopy = !hasValue || v == "true"
		case "tmpfs-size":
			n, err := berthunits.RAMInBytes(v)
			if err != nil {
				return m, fmt.Errorf("--mount: tmpfs-size: %w", err)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.SizeBytes = n
		case "tmpfs-mode":
			n, err := strconv.ParseUint(v, 8, 32)
			if err != nil {
				return m, fmt.Errorf("--mount: tmpfs-mode %q is not an octal mode", v)
			}
			if m.TmpfsOptions == nil {
				m.TmpfsOptions = &mount.TmpfsOptions{}
			}
			m.TmpfsOptions.Mode = os.FileMode(n)
		default:
			return m, fmt.Errorf("--mount: unknown option %q in %q", k, s)
		}
	}
	switch m.Type {
	case mount.TypeBind, mount.TypeVolume, mount.TypeTmpfs:
	default:
		return m, fmt.Errorf("--mount: type %q is not supported (bind, volume or tmpfs)", m.Type)
	}
	if m.Target == "" || !filepath.IsAbs(m.Target) {
		return m, fmt.Errorf("--mount: %q: target must be an absolute path", s)
	}
	if m.Type == mount.TypeBind && !filepath.IsAbs(m.Source) {
		return m, fmt.Errorf("--mount: %q: a bind mount needs an absolute source", s)
	}
	if m.Type == mount.TypeTmpfs && m.Source != "" {
		return m, fmt.Errorf("--mount: %q: a tmpfs has no source", s)
	}
	return m, nil
}

func parseThrottle(flag, s string, iops bool) (*blkiodev.ThrottleDevice, error) {
	dev, rate, ok := strings.Cut(s, ":")
	if !ok || !strings.HasPrefix(dev, "/dev/") {
		return nil, fmt.Errorf("%s: %q: want /dev/DEVICE:RATE", flag, s)
	}
	var v uint64
	if iops {
		n, err := strconv.ParseUint(rate, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: %q: the rate must be a number of operations", flag, s)
		}
		v = n
	} else {
		n, err := berthunits.RAMInBytes(rate)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%s: %q: the rate must be a size (e.g. 1mb)", flag, s)
		}
		v = uint64(n)
	}
	var st unix.Stat_t
	if err := unix.Stat(dev, &st); err != nil {
		return nil, fmt.Errorf("%s: %s: %w", flag, dev, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK {
		return nil, fmt.Errorf("%s: %s is not a block device", flag, dev)
	}
	return &blkiodev.ThrottleDevice{Path: dev, Rate: v}, nil
}

func parseDevice(s string) (container.DeviceMapping, error) {
	parts := strings.Split(s, ":")
	d := container.DeviceMapping{PathOnHost: parts[0], PathInContainer: parts[0], CgroupPermissions: "rwm"}
	switch len(parts) {
	case 1:
	case 2:
		if strings.Trim(parts[1], "rwm") == "" {
			d.CgroupPermissions = parts[1]
		} else {
			d.PathInContainer = parts[1]
		}
	case 3:
		d.PathInContainer, d.CgroupPermissions = parts[1], parts[2]
	default:
		return d, fmt.Errorf("--device: invalid device specification %q", s)
	}
	if strings.Trim(d.CgroupPermissions, "rwm") != "" || d.CgroupPermissions == "" {
		return d, fmt.Errorf("--device: %q: permissions must be a combination of r, w and m", s)
	}
	if !filepath.IsAbs(d.PathOnHost) || !filepath.IsAbs(d.PathInContainer) {
		return d, fmt.Errorf("--device: %q: paths must be absolute", s)
	}
	if _, err := os.Stat(d.PathOnHost); err != nil {
		return d, fmt.Errorf("--device: %w", err)
	}
	return d, nil
}

// parsePorts reads -p and --expose into the exposed ports and bindings.
func parsePorts(publish, expose []string) (network.PortSet, network.PortMap, error) {
	ports := network.PortSet{}
	bindings := network.PortMap{}
	for _, e := range expose {
		proto := "tcp"
		spec, p, ok := strings.Cut(e, "/")
		if ok {
			proto = p
		}
		lo, hi, err := portRange(spec)
		if err != nil {
			return nil, nil, fmt.Errorf("--expose: %q: %v", e, err)
		}
		for n := lo; n <= hi; n++ {
			port, err := network.ParsePort(strconv.Itoa(n) + "/" + proto)
			if err != nil {
				return nil, nil, fmt.Errorf("--expose: %q: %v", e, err)
			}
			ports[port] = struct{}{}
		}
	}
	for _, p := range publish {
		if err := addPublish(p, ports, bindings); err != nil {
			return nil, nil, fmt.Errorf("--publish: %q: %v", p, err)
		}
	}
	if len(ports) == 0 {
		ports = nil
	}
	if len(bindings) == 0 {
		bindings = nil
	}
	return ports, bindings, nil
}

func addPublish(s string, ports network.PortSet, bindings network.PortMap) error {
	proto := "tcp"
	if i := strings.LastIndex(s, "/"); i >= 0 {
		proto = s[i+1:]
		s = s[:i]
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return fmt.Errorf("unknown protocol %q", proto)
		}
	}
	var ip, hostPort, ctrPort string
	if strings.HasPrefix(s, "[") { // [IPv6]:host:ctr
		end := strings.Index(s, "]")
		if end < 0 {
			return fmt.Errorf("missing ] in the IPv6 address")
		}
		ip, s = s[1:end], strings.TrimPrefix(s[end+1:], ":")
		hostPort, ctrPort, _ = strings.Cut(s, ":")
	} else {
		parts := strings.Split(s, ":")
		switch len(parts) {
		case 1:
			ctrPort = parts[0]
		case 2:
			hostPort, ctrPort = parts[0], parts[1]
		case 3:
			ip, hostPort, ctrPort = parts[0], parts[1], parts[2]
		default:
			return fmt.Errorf("want [IP:][HOST_PORT:]CONTAINER_PORT")
		}
	}
	if ip != "" {
		if _, err := netip.ParseAddr(ip); err != nil {
			return fmt.Errorf("%q is not an IP address", ip)
		}
	}
	clo, chi, err := portRange(ctrPort)
	if err != nil {
		return err
	}
	hlo, hhi := 0, 0
	if hostPort != "" {
		// Host port 0 is any free one, as with no host port (Docker's
		// reading; the binding keeps "0").
		if hostPort != "0" {
			if hlo, hhi, err = portRange(hostPort); err != nil {
				return err
			}
		}
		if hhi-hlo != chi-clo && chi != clo {
			return fmt.Errorf("the host and container port ranges differ in size")
		}
	}
	for n := clo; n <= chi; n++ {
		port, err := network.ParsePort(strconv.Itoa(n) + "/" + proto)
		if err != nil {
			return err
		}
		ports[port] = struct{}{}
		hp := ""
		switch {
		case hostPort == "":
		case hhi == hlo:
			hp = strconv.Itoa(hlo)
		case chi == clo: // one container port, any free host port of the range
			hp = strconv.Itoa(hlo) + "-" + strconv.Itoa(hhi)
		default:
			hp = strconv.Itoa(hlo + n - clo)
		}
		b := network.PortBinding{HostPort: hp}
		if ip != "" {
			b.HostIP, _ = netip.ParseAddr(ip)
		}
		bindings[port] = append(bindings[port], b)
	}
	return nil
}

func portRange(s string) (int, int, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	l, err := strconv.Atoi(lo)
	if err != nil || l < 1 || l > 65535 {
		return 0, 0, fmt.Errorf("invalid port %q", s)
	}
	if !isRange {
		return l, l, nil
	}
	h, err := strconv.Atoi(hi)
	if err != nil || h < l || h > 65535 {
		return 0, 0, fmt.Errorf("invalid port range %q", s)
	}
	return l, h, nil
}

// readSeccompProfiles replaces --security-opt seccomp=FILE by the file's
// content, as the docker CLI sends it to the daemon.
func readSeccompProfiles(opts []string) ([]string, error) {
	out := make([]string, 0, len(opts))
	for _, o := range opts {
		k, v, _ := strings.Cut(o, "=")
		if (k == "seccomp") && v != "unconfined" && v != "" && !strings.HasPrefix(strings.TrimSpace(v), "{") {
			b, err := os.ReadFile(v)
			if err != nil {
				return nil, fmt.Errorf("--security-opt seccomp: %w", err)
			}
			o = "seccomp=" + string(b)
		}
		out = append(out, o)
	}
	return out, nil
}
