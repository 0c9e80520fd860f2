// Package portredirect makes host-local TCP clients reach published ports
// without NAT: a cgroup sock_addr eBPF program, attached to the root of
// the cgroup2 hierarchy, rewrites the destination of connect() from a
// published (address, port) to the container's (address, port) when the
// socket belongs to the engine's network namespace, and a second program
// makes getpeername() answer with the address the client dialed. The
// connection then runs over the bridge as a direct one does: no DNAT, no
// conntrack NAT, no masquerade on every segment (what Cilium's socket load
// balancer does).
//
// IPv6 sockets have their own pair of programs (connect6, getpeername6)
// and maps (services6, revnat6): a dialed IPv6 address (::1 included, which
// DNAT cannot serve) goes to the container's IPv6 address, or, for an
// IPv4-only container, to its IPv4 address mapped (::ffff:A.B.C.D), which
// the kernel connects over IPv4.
//
// It is an accelerator, never the only path: the nftables DNAT rules stay
// as they are and serve everything the map does not hold (other hosts,
// containers, UDP, addresses the host gained later); [::1] and IPv6
// clients of an IPv4-only container have no DNAT path, the redirection is
// their only one.
//
// The programs and their maps live in the bpf file system under
// /sys/fs/bpf/NAME (one NAME per store), so they outlast the berth process
// that made them; Sync makes the map hold exactly the entries given,
// creating and attaching what is missing, and Remove (or Sync with no
// entries) detaches and unpins everything of NAME.
//
// Maps (the byte layout the programs read):
//
//	services  hash  key {u64 netns cookie; be32 addr; be16 port; u8 proto; u8 0}
//	                value {be32 addr; be16 port; u16 0}          the container's
//	revnat    LRU   key {u64 socket cookie}
//	                value {be32 addr; be16 port; u16 0;           what was dialed
//	                       be32 addr; be16 port; u16 0}           where it went
//	services6 hash  key {u64 netns cookie; u8 addr[16]; be16 port; u8 proto; u8 0}   28 bytes
//	                value {u8 addr[16]; be16 port; u16 0}         the container's (IPv4: ::ffff:A.B.C.D)
//	revnat6   LRU   key {u64 socket cookie}
//	                value {u8 addr[16]; be16 port; u16 0;         what was dialed
//	                       u8 addr[16]; be16 port; u16 0}         where it went
package portredirect

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/berthproject/berth/internal/bpf"
)

// Entry is one published address to redirect.
type Entry struct {
	Proto string     // "tcp" (others are not redirected)
	Addr  netip.Addr // an address of the host namespace, IPv4 or IPv6
	Port  uint16
	// To is the container's address and port: for an IPv6 Addr, an IPv6
	// address or an IPv4 one (the socket connects to it mapped); for an
	// IPv4 Addr, an IPv4 address (others are not redirected).
	To netip.AddrPort
}

// BPFFS is where the bpf file system is (mounted there if it is not).
var BPFFS = "/sys/fs/bpf"

const (
	pinServices = "services"
	pinRevNAT   = "revnat"
	pinConnect  = "connect4"
	pinPeerName = "getpeername4"

	pinServices6 = "services6"
	pinRevNAT6   = "revnat6"
	pinConnect6  = "connect6"
	pinPeerName6 = "getpeername6"

	keySize6 = 28
	valSize6 = 20

	maxServices = 16384
	maxRevNAT   = 65536
)

// Dir is where the objects of name are pinned.
func Dir(name string) string { return filepath.Join(BPFFS, name) }

// programNames are the names the programs of name load with (at most 15
// bytes of letters, digits, '_' and '.'), by which leftovers are found on
// the cgroup when their pins are gone.
func programNames(name string) (connect, peer, connect6, peer6 string) {
	h := fnv.New32a()
	h.Write([]byte(name))
	x := fmt.Sprintf("%08x", h.Sum32())
	return "brt_c4_" + x, "brt_gp_" + x, "brt_c6_" + x, "brt_g6_" + x
}

// NetNSCookie is the cookie of the calling thread's network namespace.
func NetNSCookie() (uint64, error) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
}

// CgroupRoot finds the root of the cgroup2 hierarchy in /proc/self/mountinfo
// (/sys/fs/cgroup on a pure v2 host, /sys/fs/cgroup/unified on a hybrid one).
func CgroupRoot() (string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - FSTYPE SOURCE SUPER
		pre, post, ok := strings.Cut(s.Text(), " - ")
		if !ok {
			continue
		}
		f1, f2 := strings.Fields(pre), strings.Fields(post)
		if len(f1) >= 5 && len(f2) >= 1 && f2[0] == "cgroup2" && f1[3] == "/" {
			return unescape(f1[4]), nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	return "", errors.New("no cgroup2 hierarchy is mounted")
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			var v byte
			fmt.Sscanf(s[i+1:i+4], "%03o", &v)
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// objects are the open fds of one name's maps and programs.
type objects struct {
	services, revnat, connect, peer     int
	services6, revnat6, connect6, peer6 int
}

// pins are the objects' fds and the files they are pinned as, maps first.
func (o *objects) pins() []struct {
	fd   *int
	file string
} {
	return []struct {
		fd   *int
		file string
	}{{&o.services, pinServices}, {&o.revnat, pinRevNAT}, {&o.services6, pinServices6}, {&o.revnat6, pinRevNAT6},
		{&o.connect, pinConnect}, {&o.peer, pinPeerName}, {&o.connect6, pinConnect6}, {&o.peer6, pinPeerName6}}
}

// progs are the programs' fds, in the order of hooks.
func (o *objects) progs() [4]*int { return [4]*int{&o.connect, &o.peer, &o.connect6, &o.peer6} }

func (o *objects) close() {
	for _, fd := range []int{o.services, o.revnat, o.connect, o.peer, o.services6, o.revnat6, o.connect6, o.peer6} {
		if fd > 0 {
			unix.Close(fd)
		}
	}
}

// Sync makes the redirection of name hold exactly entries, for sockets of
// the network namespace with cookie netns: it mounts the bpf file system if
// needed, creates, pins and attaches the programs if they are not, and
// updates the map. No entries: Remove.
func Sync(name string, netns uint64, entries []Entry) error {
	want, want6 := map[string][]byte{}, map[string][]byte{}
	for _, e := range entries {
		if e.Proto != "tcp" || !e.To.Addr().IsValid() {
			continue
		}
		addr, to := e.Addr.Unmap(), e.To.Addr().Unmap()
		switch {
		case addr.Is4() && to.Is4():
			k, v := serviceKey(netns, addr, e.Port, unix.IPPROTO_TCP), serviceValue(netip.AddrPortFrom(to, e.To.Port()))
			if _, dup := want[string(k[:])]; !dup {
				want[string(k[:])] = v[:]
			}
		case addr.Is6():
			k, v := serviceKey6(netns, addr, e.Port, unix.IPPROTO_TCP), serviceValue6(netip.AddrPortFrom(to, e.To.Port()))
			if _, dup := want6[string(k[:])]; !dup {
				want6[string(k[:])] = v[:]
			}
		}
	}
	if len(want) == 0 && len(want6) == 0 {
		return Remove(name)
	}
	root, err := CgroupRoot()
	if err != nil {
		return err
	}
	cg, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open cgroup2 root %s: %w", root, err)
	}
	defer unix.Close(cg)
	if err := mountBPFFS(); err != nil {
		return err
	}
	o, err := open(name)
	if errors.Is(err, os.ErrNotExist) {
		if err := remove(name, cg); err != nil {
			return err
		}
		o, err = create(name)
	}
	if err != nil {
		return err
	}
	defer o.close()

	if err := syncMap(o.services, 16, want); err != nil {
		return err
	}
	if err := syncMap(o.services6, keySize6, want6); err != nil {
		return err
	}
	progs := o.progs()
	for i, h := range hooks(name) {
		id, _, err := bpf.ProgInfo(*progs[i])
		if err != nil {
			return err
		}
		ids, err := bpf.Query(cg, h.typ)
		if err != nil {
			return err
		}
		if slices.Contains(ids, id) {
			continue
		}
		if err := bpf.Attach(cg, *progs[i], h.typ); err != nil {
			return fmt.Errorf("attach to %s: %w", root, err)
		}
	}
	return nil
}

// syncMap makes the services map open at fd hold exactly want (keys of
// keySize bytes, as strings).
func syncMap(fd, keySize int, want map[string][]byte) error {
	keys, err := bpf.Keys(fd, keySize)
	if err != nil {
		return fmt.Errorf("list redirections: %w", err)
	}
	for _, k := range keys {
		if _, ok := want[string(k)]; !ok {
			if err := bpf.DeleteElem(fd, k); err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("delete redirection: %w", err)
			}
		}
	}
	for k, v := range want {
		if err := bpf.UpdateElem(fd, []byte(k), v); err != nil {
			return fmt.Errorf("add redirection: %w", err)
		}
	}
	return nil
}

// open opens the pinned objects of name; os.ErrNotExist if one is missing
// (a directory of an older berth, with the IPv4 objects only, too).
func open(name string) (*objects, error) {
	dir := Dir(name)
	o := &objects{}
	for _, p := range o.pins() {
		fd, err := bpf.Get(filepath.Join(dir, p.file))
		if err != nil {
			o.close()
			return nil, err
		}
		*p.fd = fd
	}
	return o, nil
}

// create makes the maps and programs of name and pins them, programs last:
// a directory with all eight pins is complete.
func create(name string) (_ *objects, err error) {
	o := &objects{}
	defer func() {
		if err != nil {
			o.close()
		}
	}()
	if o.services, err = bpf.CreateMap(bpf.MapSpec{Type: unix.BPF_MAP_TYPE_HASH, KeySize: 16, ValueSize: 8, MaxEntries: maxServices, Name: "brt_services"}); err != nil {
		return nil, err
	}
	if o.revnat, err = bpf.CreateMap(bpf.MapSpec{Type: unix.BPF_MAP_TYPE_LRU_HASH, KeySize: 8, ValueSize: 16, MaxEntries: maxRevNAT, Name: "brt_revnat"}); err != nil {
		return nil, err
	}
	if o.services6, err = bpf.CreateMap(bpf.MapSpec{Type: unix.BPF_MAP_TYPE_HASH, KeySize: keySize6, ValueSize: valSize6, MaxEntries: maxServices, Name: "brt_services6"}); err != nil {
		return nil, err
	}
	if o.revnat6, err = bpf.CreateMap(bpf.MapSpec{Type: unix.BPF_MAP_TYPE_LRU_HASH, KeySize: 8, ValueSize: 2 * valSize6, MaxEntries: maxRevNAT, Name: "brt_revnat6"}); err != nil {
		return nil, err
	}
	build := [...]func() ([]bpf.Insn, error){
		func() ([]bpf.Insn, error) { return ConnectProgram(o.services, o.revnat) },
		func() ([]bpf.Insn, error) { return PeerNameProgram(o.revnat) },
		func() ([]bpf.Insn, error) { return Connect6Program(o.services6, o.revnat6) },
		func() ([]bpf.Insn, error) { return PeerName6Program(o.revnat6) },
	}
	progs := o.progs()
	for i, h := range hooks(name) {
		insns, err := build[i]()
		if err != nil {
			return nil, err
		}
		if *progs[i], err = bpf.LoadProg(bpf.ProgSpec{Type: unix.BPF_PROG_TYPE_CGROUP_SOCK_ADDR, AttachType: h.typ,
			Name: h.name, Insns: insns, License: "Apache-2.0"}); err != nil {
			return nil, err
		}
	}
	dir := Dir(name)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return nil, err
	}
	for _, p := range o.pins() {
		if err := bpf.Pin(*p.fd, filepath.Join(dir, p.file)); err != nil {
			return nil, err
		}
	}
	return o, nil
}

// Remove detaches the programs of name from the cgroup2 root and removes
// its pins. It does nothing (one stat) when there are none in a mounted
// bpf file system. When no bpf file system is mounted at BPFFS (someone
// unmounted it: the pins went, what they pinned may still be attached), it
// looks for programs of name on the cgroup2 root and detaches them, so that
// a redirection whose records are gone never outlives them.
func Remove(name string) error {
	if _, err := os.Lstat(Dir(name)); errors.Is(err, os.ErrNotExist) {
		var st unix.Statfs_t
		if err := unix.Statfs(BPFFS, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
			return nil
		}
	}
	cg := -1
	if root, err := CgroupRoot(); err == nil {
		if cg, err = unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0); err != nil {
			return fmt.Errorf("open cgroup2 root %s: %w", root, err)
		}
		defer unix.Close(cg)
	}
	return remove(name, cg)
}

// remove detaches what name has attached to the cgroup open at cg (none if
// cg < 0), pinned or not, then removes its pins.
func remove(name string, cg int) error {
	dir := Dir(name)
	if cg >= 0 {
		if err := detachAll(name, cg); err != nil {
			return err
		}
	}
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range ents {
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return os.Remove(dir)
}

// hook is where one of name's programs is attached, and the name it was
// loaded with.
type hook struct {
	typ  uint32
	name string
}

func hooks(name string) []hook {
	cn, pn, cn6, pn6 := programNames(name)
	return []hook{{unix.BPF_CGROUP_INET4_CONNECT, cn}, {unix.BPF_CGROUP_INET4_GETPEERNAME, pn},
		{unix.BPF_CGROUP_INET6_CONNECT, cn6}, {unix.BPF_CGROUP_INET6_GETPEERNAME, pn6}}
}

// detachAll detaches the programs named as name's from the cgroup open at cg.
func detachAll(name string, cg int) error {
	for _, a := range hooks(name) {
		fds, err := attached(cg, a.typ, a.name)
		if err != nil {
			return err
		}
		for _, fd := range fds {
			err := bpf.Detach(cg, fd, a.typ)
			unix.Close(fd)
			if err != nil && !errors.Is(err, unix.ENOENT) {
				return fmt.Errorf("detach %s: %w", a.name, err)
			}
		}
	}
	return nil
}

// attached opens the programs called name attached to the cgroup open at
// cg for typ.
func attached(cg int, typ uint32, name string) ([]int, error) {
	ids, err := bpf.Query(cg, typ)
	if err != nil {
		return nil, err
	}
	var fds []int
	for _, id := range ids {
		fd, err := bpf.ProgFDByID(id)
		if err != nil {
			continue // gone meanwhile, or not ours to see
		}
		if _, n, err := bpf.ProgInfo(fd); err == nil && n == name {
			fds = append(fds, fd)
			continue
		}
		unix.Close(fd)
	}
	return fds, nil
}

// Attached counts the programs of name attached to the cgroup2 root (for
// tests and diagnostics: 0 once Remove has run).
func Attached(name string) (int, error) {
	root, err := CgroupRoot()
	if err != nil {
		return 0, err
	}
	cg, err := unix.Open(root, unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(cg)
	n := 0
	for _, a := range hooks(name) {
		fds, err := attached(cg, a.typ, a.name)
		if err != nil {
			return 0, err
		}
		n += len(fds)
		for _, fd := range fds {
			unix.Close(fd)
		}
	}
	return n, nil
}

// Entries lists the redirections in the maps of name (nil if it has none);
// a mapped IPv4 target of an IPv6 entry is given as the IPv4 address.
func Entries(name string) ([]Entry, error) {
	var out []Entry
	for _, m := range []struct {
		file             string
		keySize, valSize int
		addrLen          int
	}{{pinServices, 16, 8, 4}, {pinServices6, keySize6, valSize6, 16}} {
		fd, err := bpf.Get(filepath.Join(Dir(name), m.file))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		keys, err := bpf.Keys(fd, m.keySize)
		if err != nil {
			unix.Close(fd)
			return nil, err
		}
		for _, k := range keys {
			v := make([]byte, m.valSize)
			if err := bpf.LookupElem(fd, k, v); err != nil {
				continue
			}
			n := m.addrLen
			addr, _ := netip.AddrFromSlice(k[8 : 8+n])
			to, _ := netip.AddrFromSlice(v[0:n])
			out = append(out, Entry{
				Proto: "tcp",
				Addr:  addr,
				Port:  binary.BigEndian.Uint16(k[8+n : 10+n]),
				To:    netip.AddrPortFrom(to.Unmap(), binary.BigEndian.Uint16(v[n:n+2])),
			})
		}
		unix.Close(fd)
	}
	return out, nil
}

func serviceKey(netns uint64, a netip.Addr, port uint16, proto uint8) [16]byte {
	var k [16]byte
	binary.NativeEndian.PutUint64(k[0:8], netns)
	a4 := a.As4()
	copy(k[8:12], a4[:])
	binary.BigEndian.PutUint16(k[12:14], port)
	k[14] = proto
	return k
}

func serviceValue(to netip.AddrPort) [8]byte {
	var v [8]byte
	a4 := to.Addr().As4()
	copy(v[0:4], a4[:])
	binary.BigEndian.PutUint16(v[4:6], to.Port())
	return v
}

func serviceKey6(netns uint64, a netip.Addr, port uint16, proto uint8) [keySize6]byte {
	var k [keySize6]byte
	binary.NativeEndian.PutUint64(k[0:8], netns)
	a16 := a.As16()
	copy(k[8:24], a16[:])
	binary.BigEndian.PutUint16(k[24:26], port)
	k[26] = proto
	return k
}

// serviceValue6 is the services6 value for to; an IPv4 address is stored
// mapped (::ffff:A.B.C.D), as the IPv6 socket must be given it.
func serviceValue6(to netip.AddrPort) [valSize6]byte {
	var v [valSize6]byte
	a16 := to.Addr().As16() // As16 of an IPv4 address is its mapped form
	copy(v[0:16], a16[:])
	binary.BigEndian.PutUint16(v[16:18], to.Port())
	return v
}

// mountBPFFS mounts a bpf file system at BPFFS unless one is there.
func mountBPFFS() error {
	var st unix.Statfs_t
	if err := unix.Statfs(BPFFS, &st); err == nil && st.Type == unix.BPF_FS_MAGIC {
		return nil
	}
	if err := os.MkdirAll(BPFFS, 0o700); err != nil {
		return err
	}
	if err := unix.Mount("bpf", BPFFS, "bpf", 0, "mode=0700"); err != nil {
		return fmt.Errorf("mount bpf file system at %s: %w", BPFFS, err)
	}
	return nil
}
