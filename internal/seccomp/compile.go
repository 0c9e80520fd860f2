package seccomp

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// MaxInstructions is the kernel's limit on a classic BPF program
// (BPF_MAXINSNS).
const MaxInstructions = 4096

// ErrInvalid classifies errors about the configuration itself (as opposed to
// the kernel refusing it); test with errors.Is.
var ErrInvalid = errors.New("invalid seccomp configuration")

// InvalidError names the field of linux.seccomp at fault.
type InvalidError struct {
	Field string // e.g. linux.seccomp.syscalls[2].names[0]
	Msg   string
}

func (e *InvalidError) Error() string { return e.Field + ": " + e.Msg }

// Is makes errors.Is(err, ErrInvalid) true.
func (e *InvalidError) Is(target error) bool { return target == ErrInvalid }

func invalid(field, format string, a ...any) error {
	return &InvalidError{Field: field, Msg: fmt.Sprintf(format, a...)}
}

// Return values of the filter (SECCOMP_RET_*).
const (
	retKillProcess uint32 = unix.SECCOMP_RET_KILL_PROCESS
	retKillThread  uint32 = unix.SECCOMP_RET_KILL_THREAD
	retTrap        uint32 = unix.SECCOMP_RET_TRAP
	retErrno       uint32 = unix.SECCOMP_RET_ERRNO
	retUserNotif   uint32 = unix.SECCOMP_RET_USER_NOTIF
	retTrace       uint32 = unix.SECCOMP_RET_TRACE
	retLog         uint32 = unix.SECCOMP_RET_LOG
	retAllow       uint32 = unix.SECCOMP_RET_ALLOW

	retData       uint32 = unix.SECCOMP_RET_DATA
	retActionFull uint32 = unix.SECCOMP_RET_ACTION_FULL
)

// badArchAction is returned for a system call made with an ABI the filter
// does not list. libseccomp's default for SCMP_FLTATR_ACT_BADARCH is
// SCMP_ACT_KILL (kill the thread), and runc keeps it; so does berth.
const badArchAction = retKillThread

// retENOSYS answers system calls newer than the filter knows about (see
// filter.enosys).
const retENOSYS = retErrno | uint32(unix.ENOSYS)

// actionValue translates an OCI action and its errnoRet into a filter return
// value. field names the action for errors.
func actionValue(field string, a specs.LinuxSeccompAction, errnoRet *uint, errnoField string) (uint32, error) {
	data := uint32(unix.EPERM) // runc's default for ERRNO and TRACE
	if errnoRet != nil {
		if a != specs.ActErrno && a != specs.ActTrace {
			return 0, invalid(errnoField, "set, but %s returns no errno (only SCMP_ACT_ERRNO and SCMP_ACT_TRACE do)", a)
		}
		if *errnoRet > uint(retData) {
			return 0, invalid(errnoField, "%d does not fit in the 16-bit SECCOMP_RET_DATA field", *errnoRet)
		}
		data = uint32(*errnoRet)
	}
	switch a {
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActErrno:
		return retErrno | data, nil
	case specs.ActTrace:
		return retTrace | data, nil
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActNotify:
		return retUserNotif, nil
	case "":
		return 0, invalid(field, "missing")
	}
	return 0, invalid(field, "unknown action %q", a)
}

// actionName is the OCI name of a filter return value, for messages.
func actionName(ret uint32) string {
	switch ret & retActionFull {
	case retKillProcess:
		return "SCMP_ACT_KILL_PROCESS"
	case retKillThread:
		return "SCMP_ACT_KILL_THREAD"
	case retTrap:
		return "SCMP_ACT_TRAP"
	case retErrno:
		return fmt.Sprintf("SCMP_ACT_ERRNO(%d)", ret&retData)
	case retUserNotif:
		return "SCMP_ACT_NOTIFY"
	case retTrace:
		return fmt.Sprintf("SCMP_ACT_TRACE(%d)", ret&retData)
	case retLog:
		return "SCMP_ACT_LOG"
	case retAllow:
		return "SCMP_ACT_ALLOW"
	}
	return fmt.Sprintf("%#x", ret)
}

var flagValues = map[specs.LinuxSeccompFlag]uint32{
	"SECCOMP_FILTER_FLAG_TSYNC":            unix.SECCOMP_FILTER_FLAG_TSYNC,
	specs.LinuxSeccompFlagLog:              unix.SECCOMP_FILTER_FLAG_LOG,
	specs.LinuxSeccompFlagSpecAllow:        unix.SECCOMP_FILTER_FLAG_SPEC_ALLOW,
	specs.LinuxSeccompFlagWaitKillableRecv: unix.SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV,
}

// cond is one argument comparison.
type cond struct {
	index      uint
	op         specs.LinuxSeccompOperator
	value, two uint64
}

// rule is a validated entry of linux.seccomp.syscalls.
type rule struct {
	names  []string
	action uint32
	// alts are alternatives tried in order, each an AND of comparisons;
	// nil means the rule has no arguments and always matches.
	alts [][]cond
}

// filter is a validated linux.seccomp.
type filter struct {
	defaultAction uint32
	arches        []arch // native first, no duplicates
	rules         []rule
	flags         uint32
	notify        bool
	// enosys: numbers above the largest the spec names on an ABI return
	// ENOSYS, for the ABIs in enosysFor.
	enosys    bool
	enosysFor map[specs.Arch]bool
}

// Compile validates s and returns the BPF program for the native
// architecture plus s.Architectures. It is a pure function of s: the kernel
// is asked nothing (see Program.CheckKernel and Load).
func Compile(s *specs.LinuxSeccomp) (*Program, error) {
	return compile(s, NativeArch())
}

func compile(s *specs.LinuxSeccomp, native specs.Arch) (*Program, error) {
	f, err := validate(s, native)
	if err != nil {
		return nil, err
	}
	return f.program()
}

func validate(s *specs.LinuxSeccomp, native specs.Arch) (*filter, error) {
	if s == nil {
		return nil, invalid("linux.seccomp", "no filter given")
	}
	f := &filter{}
	var err error
	f.defaultAction, err = actionValue("linux.seccomp.defaultAction", s.DefaultAction, s.DefaultErrnoRet, "linux.seccomp.defaultErrnoRet")
	if err != nil {
		return nil, err
	}
	if s.DefaultAction == specs.ActNotify {
		// Every system call, write(2) included, would wait for an agent that
		// only gets the listener after the container init wrote it out.
		return nil, invalid("linux.seccomp.defaultAction", "SCMP_ACT_NOTIFY cannot be the default action")
	}

	nat, ok := lookupArch(native)
	if !ok {
		return nil, fmt.Errorf("seccomp: native architecture %q is not supported: %w", native, ErrInvalid)
	}
	f.arches = []arch{nat}
	f.enosysFor = map[specs.Arch]bool{}
	for i, name := range s.Architectures {
		field := fmt.Sprintf("linux.seccomp.architectures[%d]", i)
		if _, known := archInfo[name]; !known && !isSpecArch(name) {
			return nil, invalid(field, "unknown architecture %q", name)
		}
		a, ok := lookupArch(name)
		if !ok {
			return nil, invalid(field, "unsupported architecture %s: berth has no system call table for it", name)
		}
		if a.bigEndian != nat.bigEndian {
			return nil, invalid(field, "%s has %s byte order but the native architecture %s has %s", name, endian(a.bigEndian), native, endian(nat.bigEndian))
		}
		f.enosysFor[a.name] = true
		dup := false
		for _, b := range f.arches {
			dup = dup || b.name == a.name
		}
		if !dup {
			f.arches = append(f.arches, a)
		}
	}

	for i, fl := range s.Flags {
		v, ok := flagValues[fl]
		if !ok {
			return nil, invalid(fmt.Sprintf("linux.seccomp.flags[%d]", i), "unknown flag %q", fl)
		}
		f.flags |= v
	}

	if s.ListenerMetadata != "" && s.ListenerPath == "" {
		return nil, invalid("linux.seccomp.listenerMetadata", "set without linux.seccomp.listenerPath")
	}

	for i, sc := range s.Syscalls {
		field := fmt.Sprintf("linux.seccomp.syscalls[%d]", i)
		r := rule{names: sc.Names}
		r.action, err = actionValue(field+".action", sc.Action, sc.ErrnoRet, field+".errnoRet")
		if err != nil {
			return nil, err
		}
		if sc.Action == specs.ActNotify {
			f.notify = true
			if s.ListenerPath == "" {
				return nil, invalid(field+".action", "SCMP_ACT_NOTIFY needs linux.seccomp.listenerPath for the agent")
			}
		}
		if len(sc.Names) == 0 {
			return nil, invalid(field+".names", "empty: name at least one system call")
		}
		for j, n := range sc.Names {
			if !knownAnywhere(n) {
				return nil, invalid(fmt.Sprintf("%s.names[%d]", field, j), "unknown syscall %q", n)
			}
		}
		r.alts, err = conditions(field, sc.Args)
		if err != nil {
			return nil, err
		}
		f.rules = append(f.rules, r)
	}

	// runc prepends a stub answering ENOSYS to system calls newer than any
	// the profile names, so that new programs fall back to older calls
	// (clone3 -> clone) instead of failing with the default EPERM; not when
	// the default lets calls through anyway, and only for the ABIs the spec
	// lists in architectures (an unlisted native ABI gets no stub in runc).
	switch s.DefaultAction {
	case specs.ActAllow, specs.ActLog, specs.ActTrace:
	default:
		f.enosys = f.defaultAction != retENOSYS
	}
	return f, nil
}

func isSpecArch(a specs.Arch) bool {
	switch a {
	case specs.ArchMIPS64N32, specs.ArchMIPSEL64N32, specs.ArchS390, specs.ArchPARISC,
		specs.ArchPARISC64, specs.ArchM68K, specs.ArchSH, specs.ArchSHEB:
		return true
	}
	return false
}

func endian(big bool) string {
	if big {
		return "big-endian"
	}
	return "little-endian"
}

// conditions validates args and groups them like runc does with libseccomp:
// comparisons on distinct arguments are ANDed in one rule; if any argument
// index appears twice (libseccomp refuses that in one rule), every
// comparison becomes a rule of its own, so they are ORed.
func conditions(field string, args []specs.LinuxSeccompArg) ([][]cond, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var all []cond
	seen := map[uint]bool{}
	repeated := false
	for k, a := range args {
		af := fmt.Sprintf("%s.args[%d]", field, k)
		if a.Index > 5 {
			return nil, invalid(af+".index", "%d is out of range: system calls have arguments 0 to 5", a.Index)
		}
		switch a.Op {
		case specs.OpNotEqual, specs.OpLessThan, specs.OpLessEqual, specs.OpEqualTo,
			specs.OpGreaterEqual, specs.OpGreaterThan, specs.OpMaskedEqual:
		case "":
			return nil, invalid(af+".op", "missing")
		default:
			return nil, invalid(af+".op", "unknown operator %q", a.Op)
		}
		repeated = repeated || seen[a.Index]
		seen[a.Index] = true
		all = append(all, cond{index: a.Index, op: a.Op, value: a.Value, two: a.ValueTwo})
	}
	if !repeated {
		return [][]cond{all}, nil
	}
	alts := make([][]cond, len(all))
	for i, c := range all {
		alts[i] = []cond{c}
	}
	return alts, nil
}

// body is what the filter does for one system call on one ABI.
type body struct {
	bits     int
	alts     []alt // tried in order
	fallback uint32
}

type alt struct {
	conds  []cond
	action uint32
}

func (b body) key() string {
	var s strings.Builder
	fmt.Fprintf(&s, "%d/%x", b.bits, b.fallback)
	for _, a := range b.alts {
		fmt.Fprintf(&s, "|%x", a.action)
		for _, c := range a.conds {
			fmt.Fprintf(&s, ",%d%s%x:%x", c.index, c.op, c.value, c.two)
		}
	}
	return s.String()
}

// leaf is where a range of system call numbers ends up: a return value, or
// a body with argument checks.
type leaf struct {
	ret  uint32
	body *body
	key  string // body key; empty for a plain return
}

// abiPlan is the verdict for every system call number of one ABI.
type abiPlan struct {
	byNr   map[uint32]leaf
	maxNr  uint32 // largest number any rule names, for the ENOSYS stub
	anyNr  bool
	lo, hi uint32 // the ABI's number range, inclusive
	abi    specs.Arch
}

// plan decides each system call of ABI a.
func (f *filter) plan(a arch) abiPlan {
	p := abiPlan{byNr: map[uint32]leaf{}, lo: 0, hi: ^uint32(0), abi: a.name}
	switch a.name {
	case specs.ArchX86_64:
		p.hi = x32SyscallBit - 1
	case specs.ArchX32:
		p.lo = x32SyscallBit
	}
	type acc struct {
		uncond  bool
		ret     uint32
		alts    []alt
		present bool
	}
	per := map[uint32]*acc{}
	var order []uint32
	for _, r := range f.rules {
		for _, n := range r.names {
			nr, ok := a.number(n)
			if !ok {
				continue // known on another architecture: skipped here, as libseccomp does
			}
			if !p.anyNr || nr > p.maxNr {
				p.maxNr, p.anyNr = nr, true
			}
			if r.action == f.defaultAction {
				// runc skips rules that repeat the default action (libseccomp
				// refuses them), so they never shadow a later rule.
				continue
			}
			s := per[nr]
			if s == nil {
				s = &acc{}
				per[nr] = s
				order = append(order, nr)
			}
			if s.uncond {
				continue // an earlier argument-less rule decides: libseccomp keeps the first
			}
			if r.alts == nil {
				// An argument-less rule replaces any conditional ones
				// (libseccomp's db_rule_add drops the existing chains).
				s.uncond, s.ret, s.alts = true, r.action, nil
				continue
			}
			for _, cs := range r.alts {
				s.alts = append(s.alts, alt{conds: cs, action: r.action})
			}
		}
	}
	for _, nr := range order {
		s := per[nr]
		if s.uncond {
			p.byNr[nr] = leaf{ret: s.ret}
			continue
		}
		b := &body{bits: a.bits, alts: s.alts, fallback: f.defaultAction}
		p.byNr[nr] = leaf{body: b, key: b.key()}
	}
	return p
}

// segment is a run of system call numbers [start, next segment's start)
// with one verdict.
type segment struct {
	start uint64
	leaf  leaf
}

func sameLeaf(a, b leaf) bool {
	if a.body != nil || b.body != nil {
		return a.key == b.key && a.body != nil && b.body != nil
	}
	return a.ret == b.ret
}

// segments turns an ABI plan into sorted, merged ranges covering [lo, hi].
func (f *filter) segments(p abiPlan, out []segment) []segment {
	nrs := make([]uint32, 0, len(p.byNr))
	for nr := range p.byNr {
		nrs = append(nrs, nr)
	}
	sort.Slice(nrs, func(i, j int) bool { return nrs[i] < nrs[j] })

	add := func(start uint64, l leaf) {
		if n := len(out); n > 0 && sameLeaf(out[n-1].leaf, l) {
			return
		}
		out = append(out, segment{start: start, leaf: l})
	}
	gap := func(from, to uint64) { // numbers [from, to] with no rule
		if from > to {
			return
		}
		if f.enosys && f.enosysFor[p.abi] && p.anyNr {
			if from <= uint64(p.maxNr) {
				add(from, leaf{ret: f.defaultAction})
			}
			if to > uint64(p.maxNr) {
				add(max(from, uint64(p.maxNr)+1), leaf{ret: retENOSYS})
			}
			return
		}
		add(from, leaf{ret: f.defaultAction})
	}
	cur := uint64(p.lo)
	for _, nr := range nrs {
		if uint64(nr) > cur {
			gap(cur, uint64(nr)-1)
		}
		add(uint64(nr), p.byNr[nr])
		cur = uint64(nr) + 1
	}
	gap(cur, uint64(p.hi))
	return out
}

// compiler emits the program.
type compiler struct {
	f       *filter
	a       assembler
	lo, hi  func(i uint) uint32 // offsets of the argument halves in seccomp_data
	bodies  map[string]label
	pending []pendingBody
	actions map[uint32]bool
}

type pendingBody struct {
	l label
	b *body
}

// seccomp_data layout: int nr; __u32 arch; __u64 instruction_pointer;
// __u64 args[6]. Loads read 32-bit words in the kernel's byte order.
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

func (f *filter) program() (*Program, error) {
	c := &compiler{f: f, bodies: map[string]label{}, actions: map[uint32]bool{}}
	if f.arches[0].bigEndian {
		c.hi = func(i uint) uint32 { return offArgs + 8*uint32(i) }
		c.lo = func(i uint) uint32 { return offArgs + 8*uint32(i) + 4 }
	} else {
		c.lo = func(i uint) uint32 { return offArgs + 8*uint32(i) }
		c.hi = func(i uint) uint32 { return offArgs + 8*uint32(i) + 4 }
	}

	// One block per seccomp_data.arch value; x86_64 and x32 share
	// AUDIT_ARCH_X86_64 and are told apart by X32_SYSCALL_BIT in nr.
	type group struct {
		audit uint32
		abis  []arch
		l     label
	}
	var groups []*group
	for _, a := range f.arches {
		var g *group
		for _, h := range groups {
			if h.audit == a.audit {
				g = h
			}
		}
		if g == nil {
			g = &group{audit: a.audit, l: c.a.newLabel()}
			groups = append(groups, g)
		}
		g.abis = append(g.abis, a)
	}

	c.a.loadAbs(offArch)
	for _, g := range groups {
		c.a.jmpIf(unix.BPF_JEQ, g.audit, g.l, next)
	}
	c.ret(badArchAction)

	for _, g := range groups {
		c.a.place(g.l)
		c.a.loadAbs(offNr)
		var segs []segment
		if g.audit == unix.AUDIT_ARCH_X86_64 {
			// Like libseccomp: numbers with X32_SYSCALL_BIT belong to x32,
			// the others to x86_64; an ABI not listed gets the bad-arch action.
			var x86, x32 *arch
			for i := range g.abis {
				switch g.abis[i].name {
				case specs.ArchX86_64:
					x86 = &g.abis[i]
				case specs.ArchX32:
					x32 = &g.abis[i]
				}
			}
			if x86 != nil {
				segs = f.segments(f.plan(*x86), segs)
			} else {
				segs = append(segs, segment{start: 0, leaf: leaf{ret: badArchAction}})
			}
			if x32 != nil {
				segs = f.segments(f.plan(*x32), segs)
			} else if n := len(segs); !sameLeaf(segs[n-1].leaf, leaf{ret: badArchAction}) {
				segs = append(segs, segment{start: x32SyscallBit, leaf: leaf{ret: badArchAction}})
			}
		} else {
			segs = f.segments(f.plan(g.abis[0]), segs)
		}
		c.tree(segs)
	}

	for i := 0; i < len(c.pending); i++ {
		pb := c.pending[i]
		c.a.place(pb.l)
		c.body(pb.b)
	}

	ins, err := c.a.assemble()
	if err != nil {
		return nil, err
	}
	if len(ins) > MaxInstructions {
		return nil, invalid("linux.seccomp", "the compiled filter has %d instructions, more than the kernel's limit of %d", len(ins), MaxInstructions)
	}
	p := &Program{Filter: ins, Flags: f.flags, Notify: f.notify}
	for a := range c.actions {
		p.Actions = append(p.Actions, a)
	}
	sort.Slice(p.Actions, func(i, j int) bool { return p.Actions[i] < p.Actions[j] })
	return p, nil
}

func (c *compiler) ret(v uint32) {
	c.actions[v&retActionFull] = true
	c.a.ret(v)
}

// islandSegments bounds the subtrees whose leaves share an "island": the
// distinct verdicts of the subtree, each emitted once after it, which its
// comparisons jump to directly. A leaf then costs no instruction of its own
// and every jump stays within the 255 instructions a conditional reaches.
const islandSegments = 96

// tree emits a binary search over the segments' start numbers; A holds nr.
func (c *compiler) tree(segs []segment) {
	if len(segs) <= islandSegments {
		c.islandTree(segs)
		return
	}
	mid := len(segs) / 2
	right := c.a.newLabel()
	c.a.jmpIf(unix.BPF_JGE, uint32(segs[mid].start), right, next)
	c.tree(segs[:mid])
	c.a.place(right)
	c.tree(segs[mid:])
}

func (c *compiler) islandTree(segs []segment) {
	if len(segs) == 1 {
		c.leaf(segs[0].leaf)
		return
	}
	island := map[string]label{}
	var order []leaf
	target := func(l leaf) label {
		k := fmt.Sprintf("r%x", l.ret)
		if l.body != nil {
			k = "b" + l.key
		}
		if lb, ok := island[k]; ok {
			return lb
		}
		lb := c.a.newLabel()
		island[k] = lb
		order = append(order, l)
		return lb
	}
	// node emits one comparison; a child that is a single segment is a jump
	// into the island, a bigger one is emitted after it. Every path ends in
	// a jump, so nothing falls through into the island.
	var node func(segs []segment)
	node = func(segs []segment) {
		mid := len(segs) / 2
		left, right := segs[:mid], segs[mid:]
		lt, rt := next, c.a.newLabel()
		if len(left) == 1 {
			lt = target(left[0].leaf)
		}
		if len(right) == 1 {
			rt = target(right[0].leaf)
		}
		c.a.jmpIf(unix.BPF_JGE, uint32(right[0].start), rt, lt)
		if len(left) > 1 {
			node(left)
		}
		if len(right) > 1 {
			c.a.place(rt)
			node(right)
		}
	}
	node(segs)
	for _, l := range order {
		c.a.place(target(l))
		c.leaf(l)
	}
}

func (c *compiler) leaf(l leaf) {
	if l.body == nil {
		c.ret(l.ret)
		return
	}
	lb, ok := c.bodies[l.key]
	if !ok {
		lb = c.a.newLabel()
		c.bodies[l.key] = lb
		c.pending = append(c.pending, pendingBody{l: lb, b: l.body})
	}
	c.a.jump(lb)
}

// body emits the argument checks of one system call: the alternatives in
// order, consecutive ones with the same action sharing one return, and
// finally the fallback.
func (c *compiler) body(b *body) {
	alts := b.alts
	for i := 0; i < len(alts); {
		j := i + 1
		for j < len(alts) && alts[j].action == alts[i].action {
			j++
		}
		pass, fail := c.a.newLabel(), c.a.newLabel()
		c.altRun(alts[i:j], b.bits, pass, fail)
		c.a.place(pass)
		c.ret(alts[i].action)
		c.a.place(fail)
		i = j
	}
	c.ret(b.fallback)
}

// altRun emits alternatives that share one action: any that holds jumps to
// pass, when none does control goes to fail.
func (c *compiler) altRun(alts []alt, bits int, pass, fail label) {
	for k := 0; k < len(alts); {
		nextAlt := fail
		// Single equality tests of one argument (Docker's socket domains):
		// load the argument once and compare it with each value in turn.
		if m := eqRun(alts[k:], bits); m >= 2 {
			if k+m < len(alts) {
				nextAlt = c.a.newLabel()
			}
			first := alts[k].conds[0]
			if bits == 64 {
				c.a.loadAbs(c.hi(first.index))
				c.a.jmpIf(unix.BPF_JEQ, uint32(first.value>>32), next, nextAlt)
			}
			c.a.loadAbs(c.lo(first.index))
			for x := range m {
				onFail := next
				if x == m-1 {
					onFail = nextAlt
				}
				c.a.jmpIf(unix.BPF_JEQ, uint32(alts[k+x].conds[0].value), pass, onFail)
			}
			if nextAlt != fail {
				c.a.place(nextAlt)
			}
			k += m
			continue
		}
		if k+1 < len(alts) {
			nextAlt = c.a.newLabel()
		}
		conds := alts[k].conds
		for x, cd := range conds {
			onPass := next
			if x == len(conds)-1 {
				onPass = pass
			}
			c.cond(cd, bits, onPass, nextAlt)
		}
		if nextAlt != fail {
			c.a.place(nextAlt)
		}
		k++
	}
}

// eqRun is how many alternatives at the start of alts are a single
// SCMP_CMP_EQ on the same argument (and, on 64-bit ABIs, the same high half).
func eqRun(alts []alt, bits int) int {
	single := func(a alt) (cond, bool) {
		return a.conds[0], len(a.conds) == 1 && a.conds[0].op == specs.OpEqualTo
	}
	first, ok := single(alts[0])
	if !ok {
		return 0
	}
	n := 1
	for _, a := range alts[1:] {
		c, ok := single(a)
		if !ok || c.index != first.index || (bits == 64 && c.value>>32 != first.value>>32) {
			break
		}
		n++
	}
	return n
}

// cond emits one comparison that continues at pass or fail. On 64-bit ABIs
// the argument is compared as two 32-bit halves (libseccomp's scheme); on
// 32-bit ABIs only the low half exists and the value is truncated.
func (c *compiler) cond(cd cond, bits int, pass, fail label) {
	a := &c.a
	if pass == next {
		// Inside, next is the following instruction; "after this
		// comparison" needs a label of its own.
		end := a.newLabel()
		defer a.place(end)
		pass = end
	}
	i := cd.index
	if bits == 32 {
		v := uint32(cd.value)
		a.loadAbs(c.lo(i))
		switch cd.op {
		case specs.OpEqualTo:
			a.jmpIf(unix.BPF_JEQ, v, pass, fail)
		case specs.OpNotEqual:
			a.jmpIf(unix.BPF_JEQ, v, fail, pass)
		case specs.OpGreaterThan:
			a.jmpIf(unix.BPF_JGT, v, pass, fail)
		case specs.OpGreaterEqual:
			a.jmpIf(unix.BPF_JGE, v, pass, fail)
		case specs.OpLessThan:
			a.jmpIf(unix.BPF_JGE, v, fail, pass)
		case specs.OpLessEqual:
			a.jmpIf(unix.BPF_JGT, v, fail, pass)
		case specs.OpMaskedEqual:
			c.masked(uint32(cd.value), uint32(cd.two), pass, fail)
		}
		return
	}
	vhi, vlo := uint32(cd.value>>32), uint32(cd.value)
	switch cd.op {
	case specs.OpEqualTo:
		a.loadAbs(c.hi(i))
		a.jmpIf(unix.BPF_JEQ, vhi, next, fail)
		a.loadAbs(c.lo(i))
		a.jmpIf(unix.BPF_JEQ, vlo, pass, fail)
	case specs.OpNotEqual:
		a.loadAbs(c.hi(i))
		a.jmpIf(unix.BPF_JEQ, vhi, next, pass)
		a.loadAbs(c.lo(i))
		a.jmpIf(unix.BPF_JEQ, vlo, fail, pass)
	case specs.OpGreaterThan, specs.OpGreaterEqual:
		a.loadAbs(c.hi(i))
		a.jmpIf(unix.BPF_JGT, vhi, pass, next)
		a.jmpIf(unix.BPF_JEQ, vhi, next, fail)
		a.loadAbs(c.lo(i))
		if cd.op == specs.OpGreaterThan {
			a.jmpIf(unix.BPF_JGT, vlo, pass, fail)
		} else {
			a.jmpIf(unix.BPF_JGE, vlo, pass, fail)
		}
	case specs.OpLessThan, specs.OpLessEqual:
		a.loadAbs(c.hi(i))
		a.jmpIf(unix.BPF_JGT, vhi, fail, next)
		a.jmpIf(unix.BPF_JEQ, vhi, next, pass)
		a.loadAbs(c.lo(i))
		if cd.op == specs.OpLessThan {
			a.jmpIf(unix.BPF_JGE, vlo, fail, pass)
		} else {
			a.jmpIf(unix.BPF_JGT, vlo, fail, pass)
		}
	case specs.OpMaskedEqual:
		mhi, mlo := uint32(cd.value>>32), uint32(cd.value)
		dhi, dlo := uint32(cd.two>>32), uint32(cd.two)
		if mhi != 0 {
			a.loadAbs(c.hi(i))
			c.masked(mhi, dhi, next, fail)
		}
		if mlo != 0 {
			a.loadAbs(c.lo(i))
			c.masked(mlo, dlo, pass, fail)
		} else {
			a.jump(pass)
		}
	}
}

// masked tests (A & mask) == (datum & mask), the OCI SCMP_CMP_MASKED_EQ with
// value as the mask and valueTwo as the datum; libseccomp masks the datum
// too. A zero mask always matches.
func (c *compiler) masked(mask, datum uint32, pass, fail label) {
	if mask == 0 {
		c.a.jump(pass)
		return
	}
	if mask != ^uint32(0) {
		c.a.and(mask)
	}
	c.a.jmpIf(unix.BPF_JEQ, datum&mask, pass, fail)
}
