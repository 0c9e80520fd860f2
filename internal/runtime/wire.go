package runtime

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"sort"

	specs "github.com/opencontainers/runtime-spec/specs-go"

	"github.com/berthproject/berth/internal/rootfs"
)

// The init configuration travels to the init in a small binary encoding
// rather than JSON. encoding/json spends about two milliseconds building its
// reflection caches the first time it decodes a runtime-spec type, and the
// init is a fresh process every time; this codec costs microseconds. It is
// private to one binary talking to itself, so it needs no versioning: the
// parent and the init are always the same executable.
//
// Layout: every value in order, integers as varints, strings and byte
// slices length-prefixed, optional values behind a presence byte, slices and
// maps count-prefixed (maps in sorted key order). TestWireRoundTrip fills
// every field of every type through reflection, so a field added to the
// runtime-spec types that this file does not carry fails the test.

type wbuf struct{ b []byte }

func (w *wbuf) u(v uint64)   { w.b = binary.AppendUvarint(w.b, v) }
func (w *wbuf) i(v int64)    { w.b = binary.AppendVarint(w.b, v) }
func (w *wbuf) str(s string) { w.u(uint64(len(s))); w.b = append(w.b, s...) }
func (w *wbuf) bytes(p []byte) {
	w.u(uint64(len(p)))
	w.b = append(w.b, p...)
}
func (w *wbuf) flag(v bool) {
	if v {
		w.b = append(w.b, 1)
	} else {
		w.b = append(w.b, 0)
	}
}
func (w *wbuf) strs(l []string) {
	w.flag(l != nil)
	w.u(uint64(len(l)))
	for _, s := range l {
		w.str(s)
	}
}
func (w *wbuf) ints(l []int) {
	w.flag(l != nil)
	w.u(uint64(len(l)))
	for _, v := range l {
		w.i(int64(v))
	}
}
func (w *wbuf) strmap(m map[string]string) {
	w.flag(m != nil)
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	w.u(uint64(len(keys)))
	for _, k := range keys {
		w.str(k)
		w.str(m[k])
	}
}

type rbuf struct {
	b   []byte
	err error
}

var errWire = errors.New("malformed init configuration")

func (r *rbuf) u() uint64 {
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err, r.b = errWire, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}
func (r *rbuf) i() int64 {
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err, r.b = errWire, nil
		return 0
	}
	r.b = r.b[n:]
	return v
}
func (r *rbuf) n() int {
	v := r.u()
	if v > uint64(len(r.b)) { // every element takes at least one byte
		r.err, r.b = errWire, nil
		return 0
	}
	return int(v)
}
func (r *rbuf) raw() []byte {
	n := r.n()
	p := r.b[:n]
	r.b = r.b[n:]
	return p
}
func (r *rbuf) str() string { return string(r.raw()) }
func (r *rbuf) bytes() []byte {
	p := r.raw()
	if len(p) == 0 {
		return nil
	}
	return append([]byte(nil), p...)
}
func (r *rbuf) flag() bool {
	if len(r.b) == 0 {
		r.err = errWire
		return false
	}
	v := r.b[0] != 0
	r.b = r.b[1:]
	return v
}
func (r *rbuf) strs() []string {
	present := r.flag()
	n := r.n()
	if !present {
		return nil
	}
	l := make([]string, n)
	for k := range l {
		l[k] = r.str()
	}
	return l
}
func (r *rbuf) ints() []int {
	present := r.flag()
	n := r.n()
	if !present {
		return nil
	}
	l := make([]int, n)
	for k := range l {
		l[k] = int(r.i())
	}
	return l
}
func (r *rbuf) strmap() map[string]string {
	present := r.flag()
	n := r.n()
	if !present {
		return nil
	}
	m := make(map[string]string, n)
	for k := 0; k < n; k++ {
		key := r.str()
		m[key] = r.str()
	}
	return m
}

// optional pointers

func (w *wbuf) optU32(p *uint32) {
	w.flag(p != nil)
	if p != nil {
		w.u(uint64(*p))
	}
}
func (r *rbuf) optU32() *uint32 {
	if !r.flag() {
		return nil
	}
	v := uint32(r.u())
	return &v
}
func (w *wbuf) optInt(p *int) {
	w.flag(p != nil)
	if p != nil {
		w.i(int64(*p))
	}
}
func (r *rbuf) optInt() *int {
	if !r.flag() {
		return nil
	}
	v := int(r.i())
	return &v
}

func (w *wbuf) idmaps(m []specs.LinuxIDMapping) {
	w.flag(m != nil)
	w.u(uint64(len(m)))
	for _, e := range m {
		w.u(uint64(e.ContainerID))
		w.u(uint64(e.HostID))
		w.u(uint64(e.Size))
	}
}
func (r *rbuf) idmaps() []specs.LinuxIDMapping {
	present := r.flag()
	n := r.n()
	if !present {
		return nil
	}
	m := make([]specs.LinuxIDMapping, n)
	for k := range m {
		m[k] = specs.LinuxIDMapping{ContainerID: uint32(r.u()), HostID: uint32(r.u()), Size: uint32(r.u())}
	}
	return m
}

func (w *wbuf) hooks(l []specs.Hook) {
	w.flag(l != nil)
	w.u(uint64(len(l)))
	for _, h := range l {
		w.str(h.Path)
		w.strs(h.Args)
		w.strs(h.Env)
		w.optInt(h.Timeout)
	}
}
func (r *rbuf) hooks() []specs.Hook {
	present := r.flag()
	n := r.n()
	if !present {
		return nil
	}
	l := make([]specs.Hook, n)
	for k := range l {
		l[k] = specs.Hook{Path: r.str(), Args: r.strs(), Env: r.strs(), Timeout: r.optInt()}
	}
	return l
}

func (w *wbuf) process(p *specs.Process) {
	w.flag(p != nil)
	if p == nil {
		return
	}
	w.flag(p.Terminal)
	w.flag(p.ConsoleSize != nil)
	if p.ConsoleSize != nil {
		w.u(uint64(p.ConsoleSize.Height))
		w.u(uint64(p.ConsoleSize.Width))
	}
	w.u(uint64(p.User.UID))
	w.u(uint64(p.User.GID))
	w.optU32(p.User.Umask)
	w.flag(p.User.AdditionalGids != nil)
	w.u(uint64(len(p.User.AdditionalGids)))
	for _, g := range p.User.AdditionalGids {
		w.u(uint64(g))
	}
	w.str(p.User.Username)
	w.strs(p.Args)
	w.str(p.CommandLine)
	w.strs(p.Env)
	w.str(p.Cwd)
	w.flag(p.Capabilities != nil)
	if c := p.Capabilities; c != nil {
		w.strs(c.Bounding)
		w.strs(c.Effective)
		w.strs(c.Inheritable)
		w.strs(c.Permitted)
		w.strs(c.Ambient)
	}
	w.flag(p.Rlimits != nil)
	w.u(uint64(len(p.Rlimits)))
	for _, rl := range p.Rlimits {
		w.str(rl.Type)
		w.u(rl.Hard)
		w.u(rl.Soft)
	}
	w.flag(p.NoNewPrivileges)
	w.str(p.ApparmorProfile)
	w.optInt(p.OOMScoreAdj)
	w.flag(p.Scheduler != nil)
	if s := p.Scheduler; s != nil {
		w.str(string(s.Policy))
		w.i(int64(s.Nice))
		w.i(int64(s.Priority))
		w.flag(s.Flags != nil)
		w.u(uint64(len(s.Flags)))
		for _, f := range s.Flags {
			w.str(string(f))
		}
		w.u(s.Runtime)
		w.u(s.Deadline)
		w.u(s.Period)
	}
	w.str(p.SelinuxLabel)
	w.flag(p.IOPriority != nil)
	if io := p.IOPriority; io != nil {
		w.str(string(io.Class))
		w.i(int64(io.Priority))
	}
	w.flag(p.ExecCPUAffinity != nil)
	if a := p.ExecCPUAffinity; a != nil {
		w.str(a.Initial)
		w.str(a.Final)
	}
}

func (r *rbuf) process() *specs.Process {
	if !r.flag() {
		return nil
	}
	p := &specs.Process{Terminal: r.flag()}
	if r.flag() {
		p.ConsoleSize = &specs.Box{Height: uint(r.u()), Width: uint(r.u())}
	}
	p.User.UID = uint32(r.u())
	p.User.GID = uint32(r.u())
	p.User.Umask = r.optU32()
	present := r.flag()
	n := r.n()
	if present {
		p.User.AdditionalGids = make([]uint32, n)
		for k := range p.User.AdditionalGids {
			p.User.AdditionalGids[k] = uint32(r.u())
		}
	}
	p.User.Username = r.str()
	p.Args = r.strs()
	p.CommandLine = r.str()
	p.Env = r.strs()
	p.Cwd = r.str()
	if r.flag() {
		p.Capabilities = &specs.LinuxCapabilities{Bounding: r.strs(), Effective: r.strs(), Inheritable: r.strs(), Permitted: r.strs(), Ambient: r.strs()}
	}
	present = r.flag()
	n = r.n()
	if present {
		p.Rlimits = make([]specs.POSIXRlimit, n)
		for k := range p.Rlimits {
			p.Rlimits[k] = specs.POSIXRlimit{Type: r.str(), Hard: r.u(), Soft: r.u()}
		}
	}
	p.NoNewPrivileges = r.flag()
	p.ApparmorProfile = r.str()
	p.OOMScoreAdj = r.optInt()
	if r.flag() {
		s := &specs.Scheduler{Policy: specs.LinuxSchedulerPolicy(r.str()), Nice: int32(r.i()), Priority: int32(r.i())}
		present := r.flag()
		n := r.n()
		if present {
			s.Flags = make([]specs.LinuxSchedulerFlag, n)
			for k := range s.Flags {
				s.Flags[k] = specs.LinuxSchedulerFlag(r.str())
			}
		}
		s.Runtime, s.Deadline, s.Period = r.u(), r.u(), r.u()
		p.Scheduler = s
	}
	p.SelinuxLabel = r.str()
	if r.flag() {
		p.IOPriority = &specs.LinuxIOPriority{Class: specs.IOPriorityClass(r.str()), Priority: int(r.i())}
	}
	if r.flag() {
		p.ExecCPUAffinity = &specs.CPUAffinity{Initial: r.str(), Final: r.str()}
	}
	return p
}

func (w *wbuf) rootfs(c *rootfs.Config) {
	w.str(c.Rootfs)
	w.flag(c.Readonly)
	w.flag(c.Mounts != nil)
	w.u(uint64(len(c.Mounts)))
	for _, m := range c.Mounts {
		w.str(m.Destination)
		w.str(m.Type)
		w.str(m.Source)
		w.strs(m.Options)
		w.idmaps(m.UIDMappings)
		w.idmaps(m.GIDMappings)
	}
	w.flag(c.Devices != nil)
	w.u(uint64(len(c.Devices)))
	for _, d := range c.Devices {
		w.str(d.Path)
		w.str(d.Type)
		w.i(d.Major)
		w.i(d.Minor)
		w.flag(d.FileMode != nil)
		if d.FileMode != nil {
			w.u(uint64(*d.FileMode))
		}
		w.optU32(d.UID)
		w.optU32(d.GID)
	}
	w.strs(c.MaskedPaths)
	w.strs(c.ReadonlyPaths)
	w.str(c.RootfsPropagation)
	w.flag(c.NoPivot)
	w.flag(c.UserNS)
	w.flag(c.CgroupNS)
	w.str(c.MountLabel)
	w.ints(c.BindTrees)
}

func (r *rbuf) rootfs(c *rootfs.Config) {
	c.Rootfs = r.str()
	c.Readonly = r.flag()
	present := r.flag()
	n := r.n()
	if present {
		c.Mounts = make([]specs.Mount, n)
		for k := range c.Mounts {
			c.Mounts[k] = specs.Mount{Destination: r.str(), Type: r.str(), Source: r.str(), Options: r.strs(),
				UIDMappings: r.idmaps(), GIDMappings: r.idmaps()}
		}
	}
	present = r.flag()
	n = r.n()
	if present {
		c.Devices = make([]specs.LinuxDevice, n)
		for k := range c.Devices {
			d := specs.LinuxDevice{Path: r.str(), Type: r.str(), Major: r.i(), Minor: r.i()}
			if r.flag() {
				m := os.FileMode(r.u())
				d.FileMode = &m
			}
			d.UID, d.GID = r.optU32(), r.optU32()
			c.Devices[k] = d
		}
	}
	c.MaskedPaths = r.strs()
	c.ReadonlyPaths = r.strs()
	c.RootfsPropagation = r.str()
	c.NoPivot = r.flag()
	c.UserNS = r.flag()
	c.CgroupNS = r.flag()
	c.MountLabel = r.str()
	c.BindTrees = r.ints()
}

// MarshalBinary encodes the configuration for the init.
func (c *initConfig) MarshalBinary() ([]byte, error) {
	w := &wbuf{b: make([]byte, 0, 4096)}
	w.str(c.Kind)
	w.str(c.ID)
	w.str(c.Bundle)
	w.process(c.Process)
	w.rootfs(&c.Rootfs)
	w.bytes(c.Seccomp)
	w.str(c.SeccompMetadata)
	w.str(c.Hostname)
	w.str(c.Domainname)
	w.strmap(c.Sysctl)
	w.str(c.Personality)
	w.strmap(c.Annotations)
	w.hooks(c.CreateContainer)
	w.hooks(c.StartContainer)
	w.flag(c.HooksInParent)
	w.flag(c.NoNewKeyring)
	w.flag(c.NewNetNS)
	w.flag(c.NewUTSNS)
	w.flag(c.NewCgroupNS)
	w.flag(c.Setns != nil)
	w.u(uint64(len(c.Setns)))
	for _, j := range c.Setns {
		w.str(j.Path)
		w.i(int64(j.Flag))
		w.i(int64(j.Fd))
	}
	for _, v := range []int{c.HostPid, c.InitPid, c.PreserveFds, c.FifoFd, c.ConsoleFd, c.ListenerFd} {
		w.i(int64(v))
	}
	return w.b, nil
}

// UnmarshalBinary decodes what MarshalBinary encoded.
func (c *initConfig) UnmarshalBinary(b []byte) error {
	r := &rbuf{b: b}
	c.Kind = r.str()
	c.ID = r.str()
	c.Bundle = r.str()
	c.Process = r.process()
	r.rootfs(&c.Rootfs)
	c.Seccomp = r.bytes()
	c.SeccompMetadata = r.str()
	c.Hostname = r.str()
	c.Domainname = r.str()
	c.Sysctl = r.strmap()
	c.Personality = r.str()
	c.Annotations = r.strmap()
	c.CreateContainer = r.hooks()
	c.StartContainer = r.hooks()
	c.HooksInParent = r.flag()
	c.NoNewKeyring = r.flag()
	c.NewNetNS = r.flag()
	c.NewUTSNS = r.flag()
	c.NewCgroupNS = r.flag()
	present, n := r.flag(), r.n()
	if present {
		c.Setns = make([]nsJoin, n)
		for i := range c.Setns {
			c.Setns[i] = nsJoin{Path: r.str(), Flag: int(r.i()), Fd: int(r.i())}
		}
	}
	for _, p := range []*int{&c.HostPid, &c.InitPid, &c.PreserveFds, &c.FifoFd, &c.ConsoleFd, &c.ListenerFd} {
		*p = int(r.i())
	}
	if r.err != nil {
		return r.err
	}
	if len(r.b) != 0 {
		return fmt.Errorf("%w: %d bytes left over", errWire, len(r.b))
	}
	return nil
}
