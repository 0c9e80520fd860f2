package containerspec

import (
	"bufio"
	"bytes"
	"strconv"
	"strings"
)

// passwdEntry is one line of /etc/passwd.
type passwdEntry struct {
	name     string
	uid, gid uint32
	home     string
}

// groupEntry is one line of /etc/group.
type groupEntry struct {
	name    string
	gid     uint32
	members []string
}

// lines yields the non-empty, non-comment lines of an /etc file.
func lines(b []byte) []string {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		l := strings.TrimSpace(sc.Text())
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		out = append(out, l)
	}
	return out
}

// parseID parses a uid or gid: a decimal number below 2^31, as runc accepts.
func parseID(s string) (uint32, bool) {
	v, err := strconv.ParseUint(s, 10, 32)
	if err != nil || v > 1<<31-1 {
		return 0, false
	}
	return uint32(v), true
}

// parsePasswd reads name:password:uid:gid:gecos:home:shell lines. Lines it
// cannot read are skipped, as the C library does.
func parsePasswd(b []byte) []passwdEntry {
	var out []passwdEntry
	for _, l := range lines(b) {
		f := strings.Split(l, ":")
		if len(f) < 4 {
			continue
		}
		uid, ok1 := parseID(f[2])
		gid, ok2 := parseID(f[3])
		if !ok1 || !ok2 {
			continue
		}
		e := passwdEntry{name: f[0], uid: uid, gid: gid}
		if len(f) > 5 {
			e.home = f[5]
		}
		out = append(out, e)
	}
	return out
}

// parseGroup reads name:password:gid:member,member lines.
func parseGroup(b []byte) []groupEntry {
	var out []groupEntry
	for _, l := range lines(b) {
		f := strings.Split(l, ":")
		if len(f) < 3 {
			continue
		}
		gid, ok := parseID(f[2])
		if !ok {
			continue
		}
		e := groupEntry{name: f[0], gid: gid}
		if len(f) > 3 && f[3] != "" {
			e.members = strings.Split(f[3], ",")
		}
		out = append(out, e)
	}
	return out
}

// execUser is the identity the container's process runs as.
type execUser struct {
	uid, gid uint32
	sgids    []uint32 // supplementary groups from /etc/group (implicit group form only)
	home     string
}

// resolveUser resolves Docker's -u forms ("user", "uid", "user:group",
// "uid:gid", and the mixes) the way runc's user package does for Docker:
//   - the user part matches a passwd entry by name or by uid (first match);
//     a number without an entry is used as is, with gid 0 and home "/";
//     a name without an entry is an error;
//   - an explicit group matches a group entry by name or gid; a number
//     without an entry is used as is; otherwise the primary gid is the
//     passwd entry's and the supplementary groups are those listing the
//     user's name as a member.
func resolveUser(spec string, passwd, group []byte) (execUser, error) {
	u := execUser{home: "/"}
	userArg, groupArg, hasGroup := strings.Cut(spec, ":")
	if hasGroup && groupArg == "" {
		return u, invalid("-u", "%q: empty group", spec)
	}
	if userArg == "" {
		if hasGroup {
			return u, invalid("-u", "%q: empty user name", spec)
		}
		userArg = "0"
	}
	matched := ""
	found := false
	for _, e := range parsePasswd(passwd) {
		if e.name == userArg || strconv.FormatUint(uint64(e.uid), 10) == userArg {
			u.uid, u.gid, matched, found = e.uid, e.gid, e.name, true
			if e.home != "" {
				u.home = e.home
			}
			break
		}
	}
	if !found {
		uid, ok := parseID(userArg)
		if !ok {
			if passwd == nil {
				return u, invalid("-u", "no user %q: the image has no /etc/passwd", userArg)
			}
			return u, invalid("-u", "no user %q in the image's /etc/passwd", userArg)
		}
		u.uid = uid
	}
	groups := parseGroup(group)
	switch {
	case hasGroup:
		for _, g := range groups {
			if g.name == groupArg || strconv.FormatUint(uint64(g.gid), 10) == groupArg {
				u.gid = g.gid
				return u, nil
			}
		}
		gid, ok := parseID(groupArg)
		if !ok {
			if group == nil {
				return u, invalid("-u", "no group %q: the image has no /etc/group", groupArg)
			}
			return u, invalid("-u", "no group %q in the image's /etc/group", groupArg)
		}
		u.gid = gid
	case matched != "":
		for _, g := range groups {
			for _, m := range g.members {
				if m == matched {
					u.sgids = append(u.sgids, g.gid)
					break
				}
			}
		}
	}
	return u, nil
}

// resolveGroups resolves --group-add entries: names through /etc/group,
// numbers as they are.
func resolveGroups(names []string, group []byte) ([]uint32, error) {
	var out []uint32
	groups := parseGroup(group)
outer:
	for _, n := range names {
		for _, g := range groups {
			if g.name == n || strconv.FormatUint(uint64(g.gid), 10) == n {
				out = append(out, g.gid)
				continue outer
			}
		}
		gid, ok := parseID(n)
		if !ok {
			return nil, invalid("--group-add", "no group %q in the image's /etc/group", n)
		}
		out = append(out, gid)
	}
	return out, nil
}
