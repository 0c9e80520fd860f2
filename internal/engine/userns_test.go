package engine

import (
	"fmt"
	"reflect"
	"testing"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

func TestFreeRange(t *testing.T) {
	r := func(host, size uint32) specs.LinuxIDMapping { return specs.LinuxIDMapping{HostID: host, Size: size} }
	tests := []struct {
		name string
		used []specs.LinuxIDMapping
		want uint32
	}{
		{"empty pool", nil, autoFirst},
		{"first taken", []specs.LinuxIDMapping{r(autoFirst, autoSize)}, autoFirst + autoSize},
		{"overlap by one id", []specs.LinuxIDMapping{r(autoFirst+autoSize-1, 1)}, autoFirst + autoSize},
		{"a subuid range across two", []specs.LinuxIDMapping{r(autoFirst+100, autoSize)}, autoFirst + 2*autoSize},
		{"below the pool", []specs.LinuxIDMapping{r(100000, 65536)}, autoFirst},
		{"a hole", []specs.LinuxIDMapping{r(autoFirst, autoSize), r(autoFirst+2*autoSize, autoSize)}, autoFirst + autoSize},
	}
	for _, tt := range tests {
		if got, ok := freeRange(tt.used); !ok || got != tt.want {
			t.Errorf("%s: freeRange = %d, %v; want %d", tt.name, got, ok, tt.want)
		}
	}
	if _, ok := freeRange([]specs.LinuxIDMapping{r(0, 0xFFFFFFFF)}); ok {
		t.Error("freeRange found a range in a full pool")
	}
}

func TestIDMapOverlayOptions(t *testing.T) {
	var cloned []string
	clone := func(src string) (string, error) {
		cloned = append(cloned, src)
		return fmt.Sprintf("/run/c/idmap/%d", len(cloned)-1), nil
	}
	in := []string{"index=off", "lowerdir=/s/2/fs:/s/1/fs", "upperdir=/s/3/fs", "workdir=/s/3/work", "volatile"}
	got, err := idmapOverlayOptions(in, clone)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"index=off", "lowerdir=/run/c/idmap/1:/run/c/idmap/2", "upperdir=/run/c/idmap/0/fs", "workdir=/run/c/idmap/0/work", "volatile"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("idmapOverlayOptions(%q) = %q, want %q", in, got, want)
	}
	if want := []string{"/s/3", "/s/2/fs", "/s/1/fs"}; !reflect.DeepEqual(cloned, want) {
		t.Errorf("cloned %q, want %q (the upper's directory once, each lower)", cloned, want)
	}
	if _, err := idmapOverlayOptions([]string{"lowerdir=/a", "upperdir=/x/fs", "workdir=/y/work"}, clone); err == nil {
		t.Error("upper and work in different directories: no error")
	}
}

func TestUnmapIDs(t *testing.T) {
	tests := []struct {
		in, want []specs.LinuxIDMapping
	}{
		{nil, nil},
		{
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 524288, Size: 65536}},
			[]specs.LinuxIDMapping{{ContainerID: 524288, HostID: 0, Size: 65536}, {ContainerID: 0, HostID: 65536, Size: 1}},
		},
		{ // host root mapped already: no extra id for it
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 1, HostID: 300001, Size: 100}},
			[]specs.LinuxIDMapping{{ContainerID: 0, HostID: 0, Size: 1}, {ContainerID: 300001, HostID: 1, Size: 100}},
		},
	}
	for _, tt := range tests {
		if got := unmapIDs(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("unmapIDs(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}
