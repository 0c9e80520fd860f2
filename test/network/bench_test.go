package network

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/network"
	"github.com/berthproject/berth/internal/network/netns"
)

// The benchmarks compare, in one run and inside the throwaway host
// namespace, the paths from a client to a server:
//
//	loopback        host -> 127.0.0.1 (the ceiling: no bridge, no veth)
//	bridge          host -> the container's address on the bridge
//	published-lo    host -> 127.0.0.1:PORT, redirected at connect()
//	                (portredirect; with BERTH_PORT_REDIRECT=0: DNAT in
//	                output, route_localnet)
//	published-dnat  host -> 127.0.0.2:PORT, which the redirection does not
//	                hold: DNAT in output, the path published-lo takes
//	                without the redirection, in the same run
//	published-host  host -> its own address:PORT, redirected at connect()
//	                (without it: DNAT in output)
//	published-other another host -> the host's address:PORT, DNAT in
//	                prerouting and forwarding
//	published-v6lo  host -> [::1]:PORT, redirected at connect() to the
//	                (IPv4-only) container's address mapped, so the
//	                connection runs over IPv4 (no path without the
//	                redirection: DNAT cannot serve ::1)
//	published-v6host host -> its own IPv6 address:PORT, the same way
//
// Throughput is iperf3 (one TCP stream); connection rate is short HTTP
// requests (a new connection each) to busybox httpd. Each path is measured
// in several interleaved rounds and the median kept; ratios are to the
// bridge path, the target being published >= 95% of its throughput and
// >= 90% of its connection rate.
//
//	go test -c -o nettest ./test/network && sudo ./nettest -test.run '^$' -test.bench . -test.benchtime 1x -test.v

const benchRounds = 3

type benchPath struct {
	name string
	from string // namespace of the client ("" the host's)
	addr string // host:port
}

// benchSetup starts a container with iperf3 and httpd published on the
// host, and the same servers on the host's loopback.
func benchSetup(b *testing.B) (*host, []benchPath, []benchPath) {
	needRoot(b)
	for _, tool := range []string{"iperf3", "busybox", "nsenter"} {
		if _, err := exec.LookPath(tool); err != nil {
			b.Skipf("needs %s (apt-get install iperf3 busybox-static)", tool)
		}
	}
	// Many short connections: let TIME_WAIT ports be reused (this is the
	// throwaway namespace's own setting).
	os.WriteFile("/proc/sys/net/ipv4/tcp_tw_reuse", []byte("1"), 0o644)
	h := newHost(b)
	other := h.otherHost()
	c := h.container("bench")
	ep := h.attach(c, network.AttachOptions{Ports: []network.PortRequest{
		{Proto: "tcp", HostPort: 15201, ContainerPort: 5201},
		{Proto: "tcp", HostPort: 18080, ContainerPort: 80},
	}})
	www := filepath.Join(h.dir, "www")
	os.MkdirAll(www, 0o755)
	os.WriteFile(filepath.Join(www, "index.html"), []byte("hello\n"), 0o644)
	startDaemon(b, c.ns, "busybox", "httpd", "-f", "-p", "80", "-h", www)
	startDaemon(b, "", "busybox", "httpd", "-f", "-p", "127.0.0.1:28080", "-h", www)
	waitListen(b, c.ns, "127.0.0.1:80")
	waitListen(b, "", "127.0.0.1:28080")
	ip := ep.IPv4.Addr().String()
	iperf := []benchPath{
		{"loopback", "", "127.0.0.1:25201"},
		{"bridge", "", ip + ":5201"},
		{"published-lo", "", "127.0.0.1:15201"},
		{"published-dnat", "", "127.0.0.2:15201"},
		{"published-host", "", "10.250.0.1:15201"},
		{"published-other", other, "10.250.0.1:15201"},
		{"published-v6lo", "", "[::1]:15201"},
		{"published-v6host", "", "[fd00:250::1]:15201"},
	}
	httpPaths := []benchPath{
		{"loopback", "", "127.0.0.1:28080"},
		{"bridge", "", ip + ":80"},
		{"published-lo", "", "127.0.0.1:18080"},
		{"published-dnat", "", "127.0.0.2:18080"},
		{"published-host", "", "10.250.0.1:18080"},
		{"published-other", other, "10.250.0.1:18080"},
		{"published-v6lo", "", "[::1]:18080"},
		{"published-v6host", "", "[fd00:250::1]:18080"},
	}
	b.Cleanup(func() { _ = c })
	b.Logf("%s=%q; connect-time redirections: %q", network.RedirectEnv, os.Getenv(network.RedirectEnv), h.redirects())
	return h, onlyPaths(iperf), onlyPaths(httpPaths)
}

// onlyPaths keeps the paths BERTH_BENCH_PATHS names (comma-separated; all
// when unset), with the bridge always (the ratios' reference).
func onlyPaths(ps []benchPath) []benchPath {
	want := os.Getenv("BERTH_BENCH_PATHS")
	if want == "" {
		return ps
	}
	return slices.DeleteFunc(ps, func(p benchPath) bool {
		return p.name != "bridge" && !slices.Contains(strings.Split(want, ","), p.name)
	})
}

// startDaemon runs a server in ns until the benchmark ends.
func startDaemon(b *testing.B, ns string, args ...string) *exec.Cmd {
	b.Helper()
	if ns != "" {
		args = append([]string{"nsenter", "--net=" + ns}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

func waitListen(b *testing.B, ns, addr string) {
	b.Helper()
	for i := 0; i < 500; i++ {
		var c net.Conn
		err := inNS(ns, func() (err error) { c, err = net.Dial("tcp", addr); return err })
		if err == nil {
			c.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.Fatalf("nothing listens on %s in %q", addr, ns)
}

// iperf3 measures one stream for a few seconds and returns bits/s.
func iperf3(b *testing.B, ns, serverNS string, p benchPath, serverPort string) float64 {
	b.Helper()
	srv := []string{"iperf3", "-s", "-1", "-p", serverPort}
	if serverNS != "" {
		srv = append([]string{"nsenter", "--net=" + serverNS}, srv...)
	}
	s := exec.Command(srv[0], srv[1:]...)
	if err := s.Start(); err != nil {
		b.Fatal(err)
	}
	// A one-off server exits after its test; on a failure it is killed,
	// or waiting for it would hang the benchmark.
	defer func() {
		s.Process.Kill()
		s.Wait()
	}()
	host, port, _ := net.SplitHostPort(p.addr)
	args := []string{"iperf3", "-c", host, "-p", port, "-t", "3", "-O", "1", "-J"}
	if ns != "" {
		args = append([]string{"nsenter", "--net=" + ns}, args...)
	}
	type result struct {
		Error string `json:"error"`
		End   struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	// iperf3 3.12 reports a refused connection in its JSON and exits 0:
	// retry until the one-off server listens.
	var res result
	for i := 0; ; i++ {
		out, err := exec.Command(args[0], args[1:]...).Output()
		res = result{}
		if jerr := json.Unmarshal(out, &res); jerr != nil && err == nil {
			err = fmt.Errorf("output: %v: %q", jerr, out)
		}
		refused := strings.Contains(res.Error, "Connection refused")
		if err == nil && res.Error == "" && res.End.SumReceived.BitsPerSecond > 0 {
			break
		}
		if i == 100 || !refused {
			b.Fatalf("iperf3 %s: %v %q", p.name, err, res.Error)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return res.End.SumReceived.BitsPerSecond
}

// connRate makes short HTTP requests (one connection each) for a few
// seconds from several workers and returns requests per second.
func connRate(b *testing.B, p benchPath) float64 {
	b.Helper()
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := inNS(p.from, func() (err error) { c, err = (&net.Dialer{}).DialContext(ctx, network, addr); return err })
		return c, err
	}
	tr := &http.Transport{DisableKeepAlives: true, DialContext: dial}
	client := &http.Client{Transport: tr, Timeout: ioTimeout}
	const workers = 8
	var n, failed atomic.Int64
	deadline := time.Now().Add(3 * time.Second)
	var wg sync.WaitGroup
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				resp, err := client.Get("http://" + p.addr + "/index.html")
				if err != nil {
					failed.Add(1)
					continue
				}
				resp.Body.Close()
				if resp.StatusCode == 200 {
					n.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > n.Load()/100 {
		b.Errorf("%s: %d of %d requests failed", p.name, f, f+n.Load())
	}
	return float64(n.Load()) / time.Since(start).Seconds()
}

func median(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func BenchmarkThroughput(b *testing.B) {
	h, paths, _ := benchSetup(b)
	c := &ctr{ns: filepath.Join(h.dir, "ns-bench")}
	results := map[string][]float64{}
	for round := 0; round < benchRounds; round++ {
		for _, p := range paths {
			serverNS, port := c.ns, "5201"
			if p.name == "loopback" {
				serverNS, port = "", "25201"
			}
			results[p.name] = append(results[p.name], iperf3(b, p.from, serverNS, p, port))
		}
	}
	bridge := median(results["bridge"])
	for _, p := range paths {
		m := median(results[p.name])
		b.Logf("%-17s %6.2f Gbit/s  %5.1f%% of bridge  (rounds: %v)", p.name, m/1e9, 100*m/bridge, gbits(results[p.name]))
		b.ReportMetric(m/1e9, p.name+"-Gbit/s")
	}
}

func BenchmarkConnectionRate(b *testing.B) {
	_, _, paths := benchSetup(b)
	results := map[string][]float64{}
	for round := 0; round < benchRounds; round++ {
		for _, p := range paths {
			results[p.name] = append(results[p.name], connRate(b, p))
		}
	}
	bridge := median(results["bridge"])
	for _, p := range paths {
		m := median(results[p.name])
		b.Logf("%-17s %7.0f conn/s  %5.1f%% of bridge  (rounds: %.0f)", p.name, m, 100*m/bridge, results[p.name])
		b.ReportMetric(m, p.name+"-conn/s")
	}
}

func gbits(xs []float64) string {
	s := ""
	for _, x := range xs {
		s += fmt.Sprintf(" %.2f", x/1e9)
	}
	return s[1:]
}

// BenchmarkAttachDetach is the network's share of `run --rm`: a network
// namespace, Attach with a published port, then either DetachAll (the
// links deleted) or Release (the links left to the namespace's
// destruction, as the engine does when the container is gone), and the
// namespace removed; and the plain `run --rm` (no published port, Release).
// The three alternate.
func BenchmarkAttachDetach(b *testing.B) {
	h := newHost(b)
	ctx := context.Background()
	// Warm: the bridge exists, as on any host that ran a container.
	warm := h.container("warm")
	h.attach(warm, network.AttachOptions{})
	durations := map[string][]time.Duration{}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, mode := range []string{"detach", "release", "noport"} {
			start := time.Now()
			p := filepath.Join(h.dir, fmt.Sprintf("ns-%s%d", mode, i))
			if err := netns.Create(p, nil); err != nil {
				b.Fatal(err)
			}
			id := fmt.Sprintf("%s%058d", mode[:6], i)
			var ports []network.PortRequest
			if mode != "noport" {
				ports = []network.PortRequest{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}
			}
			if _, err := h.m.Attach(ctx, network.AttachOptions{ContainerID: id, ContainerName: fmt.Sprintf("%s%d", mode, i), NetNS: p, Network: "bridge",
				Ports: ports}); err != nil {
				b.Fatal(err)
			}
			detach := h.m.DetachAll
			if mode != "detach" {
				detach = h.m.Release
			}
			if err := detach(ctx, id); err != nil {
				b.Fatal(err)
			}
			if err := netns.Remove(p); err != nil {
				b.Fatal(err)
			}
			durations[mode] = append(durations[mode], time.Since(start))
		}
	}
	b.StopTimer()
	for _, mode := range []string{"detach", "release", "noport"} {
		d := durations[mode]
		slices.Sort(d)
		b.Logf("attach+%s: median %v, max %v over %d", map[string]string{"detach": "detach with a published port",
			"release": "release with a published port", "noport": "release without a port"}[mode], d[len(d)/2], d[len(d)-1], len(d))
	}
}
