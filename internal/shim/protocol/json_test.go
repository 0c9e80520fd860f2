package protocol

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestAppendStringDecodesAsEncodingJSON(t *testing.T) {
	tests := []struct {
		in   string
		want string // the exact encoding; "" = only check it decodes back
	}{
		{"hello\n", `"hello\n"`},
		{`quote " backslash \`, `"quote \" backslash \\"`},
		{"tab\tcr\r", `"tab\tcr\r"`},
		{"<a href='x'>&amp;</a>", `"\u003ca href='x'\u003e\u0026amp;\u003c/a\u003e"`},
		{"\x00\x01\x1f\x7f", `"\u0000\u0001\u001f` + "\x7f" + `"`},
		{"line\u2028sep\u2029", `"line\u2028sep\u2029"`},
		{"héllo wörld ✓ 🐳", `"héllo wörld ✓ 🐳"`},
		{"bad \xff\xfe utf8", `"bad \ufffd\ufffd utf8"`},
		{"cut \xe2\x9c", `"cut \ufffd\ufffd"`},
		{"", `""`},
	}
	for _, tt := range tests {
		got := string(AppendString(nil, tt.in))
		if got != tt.want {
			t.Errorf("AppendString(%q) = %s, want %s", tt.in, got, tt.want)
		}
		if b := string(AppendString(nil, []byte(tt.in))); b != got {
			t.Errorf("AppendString([]byte(%q)) = %s, want the string form %s", tt.in, b, got)
		}
		var back string
		if err := json.Unmarshal([]byte(got), &back); err != nil {
			t.Errorf("encoding/json cannot decode AppendString(%q) = %s: %v", tt.in, got, err)
			continue
		}
		want, _ := json.Marshal(tt.in)
		var viaJSON string
		_ = json.Unmarshal(want, &viaJSON)
		if back != viaJSON {
			t.Errorf("AppendString(%q) decodes to %q, encoding/json's to %q", tt.in, back, viaJSON)
		}
		unq, err := AppendUnquote(nil, []byte(got))
		if err != nil || string(unq) != viaJSON {
			t.Errorf("AppendUnquote(%s) = %q, %v; want %q", got, unq, err, viaJSON)
		}
	}
}

func TestAppendStringAllocatesNothing(t *testing.T) {
	buf := make([]byte, 0, 256)
	in := []byte("some output with <html> & unicode ✓ and \xff\n")
	if n := testing.AllocsPerRun(100, func() { buf = AppendString(buf[:0], in) }); n != 0 {
		t.Errorf("AppendString allocates %v times per call, want 0", n)
	}
}

func TestAppendUnquoteEscapes(t *testing.T) {
	tests := []struct{ in, want string }{
		{`"a\/b\b\f\n\r\t"`, "a/b\b\f\n\r\t"},
		{`"\u00e9\u2713"`, "é✓"},
		{`"\ud83d\udc33"`, "🐳"},
		{`"\ud83d alone"`, "\ufffd alone"},
		{`"\u004A"`, "J"},
	}
	for _, tt := range tests {
		got, err := AppendUnquote(nil, []byte(tt.in))
		if err != nil || string(got) != tt.want {
			t.Errorf("AppendUnquote(%s) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	for _, bad := range []string{`"\x"`, `"\u12"`, `"abc`, `abc"`, `"\`} {
		if _, err := AppendUnquote(nil, []byte(bad)); !errors.Is(err, ErrSyntax) {
			t.Errorf("AppendUnquote(%s) error = %v, want ErrSyntax", bad, err)
		}
	}
}

func TestDecodeObject(t *testing.T) {
	type member struct{ name, value string }
	tests := []struct {
		in   string
		want []member
	}{
		{`{}`, nil},
		{` { "a" : 1 , "b":"x\"y" } `, []member{{"a", "1"}, {"b", `"x\"y"`}}},
		{`{"nested":{"h":1,"w":[1,2,{"x":null}]},"t":true,"f":false}`,
			[]member{{"nested", `{"h":1,"w":[1,2,{"x":null}]}`}, {"t", "true"}, {"f", "false"}}},
		{`{"esc\u0061ped":-1.5e3}`, []member{{"escaped", "-1.5e3"}}},
		{"{\"a\":1}\n", []member{{"a", "1"}}},
	}
	for _, tt := range tests {
		var got []member
		err := DecodeObject([]byte(tt.in), func(name, v []byte) error {
			got = append(got, member{string(name), string(v)})
			return nil
		})
		if err != nil {
			t.Errorf("DecodeObject(%s): %v", tt.in, err)
			continue
		}
		if len(got) != len(tt.want) {
			t.Errorf("DecodeObject(%s) = %v, want %v", tt.in, got, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("DecodeObject(%s) member %d = %v, want %v", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestDecodeObjectRejects(t *testing.T) {
	for _, in := range []string{
		``, `[]`, `"x"`, `{`, `{"a"}`, `{"a":}`, `{"a":1,}`, `{"a":1 "b":2}`, `{"a":1}x`,
		`{a:1}`, `{"a":tru}`, `{"a":"x` + "\n" + `"}`, `{"a":{"b":1}`, `{"a":[1,2}`,
		`{"a":` + strings.Repeat("[", 40) + strings.Repeat("]", 40) + `}`,
	} {
		err := DecodeObject([]byte(in), func(name, v []byte) error { return nil })
		if !errors.Is(err, ErrSyntax) {
			t.Errorf("DecodeObject(%q) error = %v, want ErrSyntax", in, err)
		}
	}
}

func TestDecodeObjectStopsAtCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := DecodeObject([]byte(`{"a":1,"b":2}`), func(name, v []byte) error {
		n++
		return stop
	})
	if err != stop || n != 1 {
		t.Errorf("DecodeObject with a failing callback = %v after %d calls, want stop after 1", err, n)
	}
}
