// Command ociruntime benchmarks OCI runtimes side by side on one bundle:
// `run` of /bin/true (the whole lifecycle in one command),
// create + start + delete --force (each phase timed) and `exec` of /bin/true
// into a running container of the same bundle, interleaved round by
// round with a rotating order, reporting medians, min/max, the median of the
// per-round ratios to the first runtime, and each runtime's peak memory
// (max RSS of the runtime process and what it waited for, from wait4).
//
//	go run ./bench/ociruntime -runtimes "runc crun berth=bin/berth-runtime"
//
// Run as root. On a hybrid cgroup host (cgroup2 mounted at
// /sys/fs/cgroup/unified) crun refuses to start anything, so the benchmark
// re-executes itself in a private mount namespace without that mount: every
// runtime then sees the same pure cgroup v1 host, and the host is untouched.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

type runtime struct {
	name, bin string
}

type sample struct {
	wall   time.Duration
	maxRSS int64 // KiB
}

func main() {
	runs := flag.Int("runs", 40, "measured rounds")
	warmup := flag.Int("warmup", 3, "discarded rounds")
	list := flag.String("runtimes", "runc crun berth=bin/berth-runtime", "runtimes: name or name=path, first is the baseline")
	args := flag.String("args", `["/bin/true"]`, "process.args of the bundle (JSON)")
	seccompProfile := flag.String("seccomp", "", "a linux.seccomp JSON file to add to the config (e.g. Docker's default profile)")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	flag.Parse()
	if os.Geteuid() != 0 {
		fatal("run as root")
	}
	if os.Getenv("OCIBENCH_NS") == "" && isHybrid() {
		reexecLegacy()
	}

	var rts []runtime
	for _, s := range strings.Fields(*list) {
		name, bin, ok := strings.Cut(s, "=")
		if !ok {
			bin = name
		}
		p, err := exec.LookPath(bin)
		if err != nil {
			fmt.Fprintf(os.Stderr, "skipping %s: %v\n", name, err)
			continue
		}
		abs, _ := filepath.Abs(p)
		rts = append(rts, runtime{name, abs})
	}
	if len(rts) == 0 {
		fatal("no runtime found")
	}

	tmp, err := os.MkdirTemp("/var/tmp", "ocibench-")
	check(err)
	if !*keep {
		defer os.RemoveAll(tmp)
	}
	bundle := filepath.Join(tmp, "bundle")
	check(makeBundle(bundle, rts[0], *args, *seccompProfile))
	// exec needs a container that runs: the same bundle with a sleep.
	sleeper := filepath.Join(tmp, "sleeper")
	check(makeBundle(sleeper, rts[0], `["sleep", "1000000"]`, *seccompProfile))
	for _, rt := range rts {
		root := filepath.Join(tmp, "state", rt.name)
		if _, err := timeCmd(rt.bin, "--root", root, "run", "--detach", "--bundle", sleeper, "ob-sleeper"); err != nil {
			fatal(fmt.Sprintf("%s run --detach: %v", rt.name, err))
		}
		cleanups = append(cleanups, func() { _, _ = timeCmd(rt.bin, "--root", root, "delete", "--force", "ob-sleeper") })
	}
	defer func() {
		for _, f := range cleanups {
			f()
		}
	}()

	type key struct{ rt, metric string }
	res := map[key][]sample{}
	metrics := []string{"run", "create", "start", "delete", "lifecycle", "exec"}
	n := 0
	loadBefore := loadavg()
	for round := 0; round < *warmup+*runs; round++ {
		for i := range rts {
			rt := rts[(i+round)%len(rts)]
			root := filepath.Join(tmp, "state", rt.name)
			n++
			id := fmt.Sprintf("ob-%d", n)
			s, err := timeCmd(rt.bin, "--root", root, "run", "--bundle", bundle, id)
			if err != nil {
				fatal(fmt.Sprintf("%s run: %v", rt.name, err))
			}
			var phases [3]sample
			for j, a := range [][]string{{"create", "--bundle", bundle, id + "c"}, {"start", id + "c"}, {"delete", "--force", id + "c"}} {
				if phases[j], err = timeCmd(rt.bin, append([]string{"--root", root}, a...)...); err != nil {
					fatal(fmt.Sprintf("%s %s: %v", rt.name, a[0], err))
				}
			}
			ex, err := timeCmd(rt.bin, "--root", root, "exec", "ob-sleeper", "/bin/true")
			if err != nil {
				fatal(fmt.Sprintf("%s exec: %v", rt.name, err))
			}
			if round < *warmup {
				continue
			}
			res[key{rt.name, "exec"}] = append(res[key{rt.name, "exec"}], ex)
			res[key{rt.name, "run"}] = append(res[key{rt.name, "run"}], s)
			res[key{rt.name, "create"}] = append(res[key{rt.name, "create"}], phases[0])
			res[key{rt.name, "start"}] = append(res[key{rt.name, "start"}], phases[1])
			res[key{rt.name, "delete"}] = append(res[key{rt.name, "delete"}], phases[2])
			res[key{rt.name, "lifecycle"}] = append(res[key{rt.name, "lifecycle"}], sample{wall: phases[0].wall + phases[1].wall + phases[2].wall})
		}
	}

	fmt.Printf("OCI runtime benchmark: bundle args %s, %d rounds (+%d warm-up), order rotated each round\n", *args, *runs, *warmup)
	fmt.Printf("kernel %s, %d CPUs, cgroups %s\n", kernel(), runtimeNumCPU(), cgroupMode())
	fmt.Printf("load average (1, 5, 15 min) before: %s, after: %s\n\n", loadBefore, loadavg())
	// Ratios are medians of per-round ratios, to the first runtime and,
	// with three or more, also to the second (runc and crun by default).
	refs := rts[:1]
	if len(rts) >= 3 {
		refs = rts[:2]
	}
	w := tabwriter.NewWriter(os.Stdout, 2, 1, 2, ' ', tabwriter.AlignRight)
	hdr := "metric\truntime\tmedian ms\tmin ms\tmax ms\t"
	for _, ref := range refs {
		hdr += "ratio to " + ref.name + "\t"
	}
	fmt.Fprintln(w, hdr+"peak RSS KiB\t")
	for _, m := range metrics {
		for _, rt := range rts {
			ss := res[key{rt.name, m}]
			ratio := ""
			for _, ref := range refs {
				if rt == ref {
					ratio += "-\t"
					continue
				}
				base := res[key{ref.name, m}]
				var rs []float64
				for i := range ss {
					rs = append(rs, float64(ss[i].wall)/float64(base[i].wall))
				}
				ratio += fmt.Sprintf("%.2f\t", median(rs))
			}
			ratio = strings.TrimSuffix(ratio, "\t")
			rss := "-"
			if m == "run" || m == "create" {
				var mx int64
				for _, s := range ss {
					mx = max(mx, s.maxRSS)
				}
				rss = fmt.Sprint(mx)
			}
			fmt.Fprintf(w, "%s\t%s\t%.2f\t%.2f\t%.2f\t%s\t%s\t\n", m, rt.name, ms(medianD(ss)), ms(minD(ss)), ms(maxD(ss)), ratio, rss)
		}
	}
	w.Flush()
}

func timeCmd(bin string, args ...string) (sample, error) {
	// Output goes to a file, not a pipe: after create the container's init
	// holds its stdio, and a pipe would never see EOF.
	out, err := os.CreateTemp("", "ocibench-out-")
	if err != nil {
		return sample{}, err
	}
	defer os.Remove(out.Name())
	defer out.Close()
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	t0 := time.Now()
	err = cmd.Run()
	d := time.Since(t0)
	if err != nil {
		b, _ := os.ReadFile(out.Name())
		return sample{}, fmt.Errorf("%w: %s", err, b)
	}
	ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	return sample{wall: d, maxRSS: ru.Maxrss}, nil
}

// makeBundle builds a busybox bundle whose config comes from the baseline
// runtime's `spec` (runc's default), adapted as the shared harness does.
func makeBundle(dir string, gen runtime, args, seccompFile string) error {
	rootfs := filepath.Join(dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("needs Debian's busybox-static: %w", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin/busybox"), bb, 0o755); err != nil {
		return err
	}
	for _, a := range []string{"sh", "true", "sleep", "cat"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", a)); err != nil {
			return err
		}
	}
	cmd := exec.Command(gen.bin, "spec")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%s spec: %v: %s", gen.name, err, out)
	}
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return err
	}
	var cfg map[string]any
	if err := json.Unmarshal(b, &cfg); err != nil {
		return err
	}
	proc := cfg["process"].(map[string]any)
	proc["terminal"] = false
	var a []any
	if err := json.Unmarshal([]byte(args), &a); err != nil {
		return fmt.Errorf("-args: %w", err)
	}
	proc["args"] = a
	cfg["root"].(map[string]any)["readonly"] = false
	if seccompFile != "" {
		sb, err := os.ReadFile(seccompFile)
		if err != nil {
			return err
		}
		var sc any
		if err := json.Unmarshal(sb, &sc); err != nil {
			return fmt.Errorf("-seccomp %s: %w", seccompFile, err)
		}
		cfg["linux"].(map[string]any)["seccomp"] = sc
	}
	b, _ = json.MarshalIndent(cfg, "", "\t")
	return os.WriteFile(filepath.Join(dir, "config.json"), b, 0o644)
}

func isHybrid() bool {
	var st unix.Statfs_t
	return unix.Statfs("/sys/fs/cgroup/unified", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// reexecLegacy runs this benchmark again in a private mount namespace where
// /sys/fs/cgroup/unified is unmounted.
func reexecLegacy() {
	script := `umount /sys/fs/cgroup/unified && exec "$0" "$@"`
	cmd := exec.Command("unshare", append([]string{"--mount", "--propagation", "private", "sh", "-c", script, os.Args[0]}, os.Args[1:]...)...)
	cmd.Env = append(os.Environ(), "OCIBENCH_NS=1")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = os.Stdin, os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			os.Exit(ee.ExitCode())
		}
		fatal(err.Error())
	}
	os.Exit(0)
}

func cgroupMode() string {
	var st unix.Statfs_t
	if unix.Statfs("/sys/fs/cgroup", &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
		return "v2"
	}
	if isHybrid() {
		return "v1 hybrid"
	}
	return "v1"
}

// loadavg is the first three fields of /proc/loadavg: the benchmark's
// numbers mean little without the load they were taken under.
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if err != nil || len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func kernel() string {
	var u unix.Utsname
	_ = unix.Uname(&u)
	return unix.ByteSliceToString(u.Release[:])
}

func runtimeNumCPU() int {
	var set unix.CPUSet
	_ = unix.SchedGetaffinity(0, &set)
	return set.Count()
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

func sorted(ss []sample) []time.Duration {
	ds := make([]time.Duration, len(ss))
	for i, s := range ss {
		ds[i] = s.wall
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds
}

func medianD(ss []sample) time.Duration {
	ds := sorted(ss)
	if len(ds) == 0 {
		return 0
	}
	if len(ds)%2 == 1 {
		return ds[len(ds)/2]
	}
	return (ds[len(ds)/2-1] + ds[len(ds)/2]) / 2
}

func minD(ss []sample) time.Duration { return sorted(ss)[0] }
func maxD(ss []sample) time.Duration { d := sorted(ss); return d[len(d)-1] }

func median(v []float64) float64 {
	sort.Float64s(v)
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func check(err error) {
	if err != nil {
		fatal(err.Error())
	}
}

// cleanups undo what the benchmark left running (the exec containers),
// also when it fails.
var cleanups []func()

func fatal(msg string) {
	fmt.Fprintln(os.Stderr, "ociruntime:", msg)
	for _, f := range cleanups {
		f()
	}
	os.Exit(1)
}
