package image

import (
	"encoding/json"
	"fmt"
	"path"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// ApplyChanges applies Dockerfile instructions (import --change, commit -c)
// to a config: CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME,
// STOPSIGNAL and ONBUILD. Errors name the instruction at fault.
func ApplyChanges(cfg *v1.Config, changes []string) error {
	for _, ch := range changes {
		if err := applyChange(cfg, ch); err != nil {
			return fmt.Errorf("%w: change %q: %v", ErrInvalid, ch, err)
		}
	}
	return nil
}

func applyChange(cfg *v1.Config, ch string) error {
	ch = strings.TrimSpace(ch)
	instr, rest, _ := strings.Cut(ch, " ")
	rest = strings.TrimSpace(rest)
	switch strings.ToUpper(instr) {
	case "CMD":
		cmd, err := execOrShell(rest)
		if err != nil {
			return err
		}
		cfg.Cmd = cmd
	case "ENTRYPOINT":
		ep, err := execOrShell(rest)
		if err != nil {
			return err
		}
		cfg.Entrypoint = ep
		if !strings.HasPrefix(rest, "[") {
			// Docker: a shell-form ENTRYPOINT ignores CMD
			cfg.Cmd = nil
		}
	case "ENV":
		kvs, err := keyValues(rest, "ENV")
		if err != nil {
			return err
		}
		for _, kv := range kvs {
			cfg.Env = setEnv(cfg.Env, kv[0], kv[1])
		}
	case "LABEL":
		kvs, err := keyValues(rest, "LABEL")
		if err != nil {
			return err
		}
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range kvs {
			cfg.Labels[kv[0]] = kv[1]
		}
	case "WORKDIR":
		if rest == "" {
			return fmt.Errorf("WORKDIR needs a path")
		}
		if !path.IsAbs(rest) {
			base := cfg.WorkingDir
			if base == "" {
				base = "/"
			}
			rest = path.Join(base, rest)
		}
		cfg.WorkingDir = path.Clean(rest)
	case "USER":
		if rest == "" {
			return fmt.Errorf("USER needs a user")
		}
		cfg.User = rest
	case "EXPOSE":
		words, err := splitWords(rest)
		if err != nil || len(words) == 0 {
			return fmt.Errorf("EXPOSE needs ports")
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, w := range words {
			port, proto, ok := strings.Cut(w, "/")
			if !ok {
				proto = "tcp"
			}
			if port == "" || strings.Trim(port, "0123456789-") != "" || (proto != "tcp" && proto != "udp" && proto != "sctp") {
				return fmt.Errorf("invalid port %q", w)
			}
			cfg.ExposedPorts[port+"/"+strings.ToLower(proto)] = struct{}{}
		}
	case "VOLUME":
		var vols []string
		if strings.HasPrefix(rest, "[") {
			if err := json.Unmarshal([]byte(rest), &vols); err != nil {
				return fmt.Errorf("VOLUME: %v", err)
			}
		} else {
			var err error
			if vols, err = splitWords(rest); err != nil {
				return err
			}
		}
		if len(vols) == 0 {
			return fmt.Errorf("VOLUME needs a path")
		}
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range vols {
			cfg.Volumes[v] = struct{}{}
		}
	case "STOPSIGNAL":
		if rest == "" {
			return fmt.Errorf("STOPSIGNAL needs a signal")
		}
		cfg.StopSignal = rest
	case "ONBUILD":
		if rest == "" {
			return fmt.Errorf("ONBUILD needs an instruction")
		}
		cfg.OnBuild = append(cfg.OnBuild, rest)
	default:
		return fmt.Errorf("unknown or unsupported instruction %q (want CMD, ENTRYPOINT, ENV, WORKDIR, USER, LABEL, EXPOSE, VOLUME, STOPSIGNAL or ONBUILD)", instr)
	}
	return nil
}

// execOrShell parses ["a","b"] (exec form) or a shell command.
func execOrShell(s string) ([]string, error) {
	if strings.HasPrefix(s, "[") {
		var args []string
		if err := json.Unmarshal([]byte(s), &args); err == nil {
			return args, nil
		}
	}
	if s == "" {
		return nil, fmt.Errorf("needs a command")
	}
	return []string{"/bin/sh", "-c", s}, nil
}

// keyValues parses "k=v k2=\"v 2\"" or the legacy "k v w" (one pair).
func keyValues(s, instr string) ([][2]string, error) {
	words, err := splitWords(s)
	if err != nil {
		return nil, err
	}
	if len(words) == 0 {
		return nil, fmt.Errorf("%s needs KEY=VALUE", instr)
	}
	if !strings.Contains(words[0], "=") {
		// legacy form: the first word is the key, the rest the value
		key, val, _ := strings.Cut(s, " ")
		if instr == "ENV" && strings.TrimSpace(val) == "" {
			return nil, fmt.Errorf("ENV %s needs a value", key)
		}
		v, err := splitWords(strings.TrimSpace(val))
		if err != nil {
			return nil, err
		}
		return [][2]string{{key, strings.Join(v, " ")}}, nil
	}
	var out [][2]string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("%s: %q is not KEY=VALUE", instr, w)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}

// splitWords splits on blanks, honouring double and single quotes and backslashes.
func splitWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var quote rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			cur.WriteRune(r)
			esc = false
		case r == '\\' && quote != '\'':
			esc, inWord = true, true
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '"' || r == '\'':
			quote, inWord = r, true
		case r == ' ' || r == '\t' || r == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote in %q", s)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

func setEnv(env []string, k, v string) []string {
	for i, e := range env {
		if name, _, _ := strings.Cut(e, "="); name == k {
			env[i] = k + "=" + v
			return env
		}
	}
	return append(env, k+"="+v)
}
