package main

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	mnetwork "github.com/moby/moby/api/types/network"
)

// TestDisplayPorts checks ps's PORTS against docker-cli's DisplayablePorts:
// the cases of its own test that a PortMap can hold, and a mixed one whose
// output docker 28.2.2 printed for the same ports (served to it by a fake
// API). Ports are grouped into ranges only where the host port is the
// container port; unpublished ports and those groups come first, in
// container port order, then the other mappings; addresses compare as
// strings ("10.0.0.1" before "9.0.0.1", "0.0.0.0" before "::").
func TestDisplayPorts(t *testing.T) {
	tests := []struct {
		ports []string // "PRIV/PROTO" (exposed) or "IP:PUB->PRIV/PROTO"
		want  string
	}{
		{[]string{"9988/tcp"}, "9988/tcp"},
		{[]string{"9988/udp"}, "9988/udp"},
		{[]string{"4.3.2.1:8899->9988/tcp"}, "4.3.2.1:8899->9988/tcp"},
		{[]string{"4.3.2.1:9988->9988/tcp"}, "4.3.2.1:9988->9988/tcp"},
		{[]string{"1.2.3.4:9998->9998/udp", "1.2.3.4:9999->9999/udp"}, "1.2.3.4:9998-9999->9998-9999/udp"},
		{[]string{"1.2.3.4:8887->9998/udp", "1.2.3.4:8888->9999/udp"}, "1.2.3.4:8887->9998/udp, 1.2.3.4:8888->9999/udp"},
		{[]string{"9998/udp", "9999/udp"}, "9998-9999/udp"},
		{[]string{"1.2.3.4:7766->6677/tcp", "9988/udp"}, "9988/udp, 1.2.3.4:7766->6677/tcp"},
		{[]string{"1.2.3.4:8899->9988/udp", "1.2.3.4:8899->9988/tcp", "4.3.2.1:3322->2233/tcp"},
			"4.3.2.1:3322->2233/tcp, 1.2.3.4:8899->9988/tcp, 1.2.3.4:8899->9988/udp"},
		{[]string{"80/tcp", "1024/tcp", "80/udp", "1024/udp", "12345/sctp"}, "80/tcp, 80/udp, 1024/tcp, 1024/udp, 12345/sctp"},
		// docker 28.2.2's output for the same ports.
		{[]string{
			"5000/tcp", "5001/tcp", "127.0.0.1:7000->7000/udp",
			"0.0.0.0:9000->9000/tcp", "0.0.0.0:9001->9001/tcp", "0.0.0.0:9002->9002/tcp",
			"0.0.0.0:8000->80/tcp", "0.0.0.0:8001->81/tcp", "0.0.0.0:8002->82/tcp",
			"[::]:8000->80/tcp", "[::]:8001->81/tcp", "[::]:8002->82/tcp",
			"[::]:9000->9000/tcp", "[::]:9001->9001/tcp", "[::]:9002->9002/tcp",
			"10.0.0.1:9000->9000/tcp", "9.0.0.1:9000->9000/tcp",
		}, "5000-5001/tcp, 127.0.0.1:7000->7000/udp, 0.0.0.0:9000-9002->9000-9002/tcp, 10.0.0.1:9000->9000/tcp, " +
			"9.0.0.1:9000->9000/tcp, [::]:9000-9002->9000-9002/tcp, 0.0.0.0:8000->80/tcp, [::]:8000->80/tcp, " +
			"0.0.0.0:8001->81/tcp, [::]:8001->81/tcp, 0.0.0.0:8002->82/tcp, [::]:8002->82/tcp"},
	}
	for _, tt := range tests {
		pm := mnetwork.PortMap{}
		for _, s := range tt.ports {
			host, priv, mapped := strings.Cut(s, "->")
			if !mapped {
				pm[mnetwork.MustParsePort(s)] = nil
				continue
			}
			ip, pub, err := net.SplitHostPort(host)
			if err != nil {
				t.Fatal(err)
			}
			p := mnetwork.MustParsePort(priv)
			pm[p] = append(pm[p], mnetwork.PortBinding{HostIP: netip.MustParseAddr(ip), HostPort: pub})
		}
		if got := displayPorts(pm); got != tt.want {
			t.Errorf("displayPorts(%q) =\n  %q\nwant\n  %q", tt.ports, got, tt.want)
		}
	}
}
