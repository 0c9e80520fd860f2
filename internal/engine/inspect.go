package engine

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/mount"
	"github.com/moby/moby/api/types/storage"
)

// Inspect returns the container in the shape of Docker's
// GET /containers/{id}/json (and `docker inspect`).
func (e *Engine) Inspect(ctx context.Context, ref string) (*container.InspectResponse, error) {
	c, err := e.Lookup(ctx, ref)
	if err != nil {
		return nil, err
	}
	return e.inspect(c), nil
}

func (e *Engine) inspect(c *Container) *container.InspectResponse {
	path, args := "", []string(nil)
	cmd := append(append([]string{}, c.Config.Entrypoint...), c.Config.Cmd...)
	if len(cmd) > 0 {
		path, args = cmd[0], cmd[1:]
	}
	if args == nil {
		args = []string{}
	}
	st := c.State
	state := &container.State{
		Status:     container.ContainerState(st.Status),
		Running:    st.Status == StatusRunning || st.Status == StatusPaused,
		Paused:     st.Status == StatusPaused,
		Restarting: st.Status == StatusRestarting,
		OOMKilled:  st.OOMKilled,
		Dead:       st.Status == StatusDead,
		Pid:        st.Pid,
		ExitCode:   st.ExitCode,
		Error:      st.Error,
		StartedAt:  dockerTime(st.StartedAt),
		FinishedAt: dockerTime(st.FinishedAt),
	}
	dir := e.containerDir(c.ID)
	r := &container.InspectResponse{
		ID:             c.ID,
		Created:        c.Created.Format(time.RFC3339Nano),
		Path:           path,
		Args:           args,
		State:          state,
		Image:          c.Image.String(),
		ResolvConfPath: filepath.Join(dir, "resolv.conf"),
		HostnamePath:   filepath.Join(dir, "hostname"),
		HostsPath:      filepath.Join(dir, "hosts"),
		LogPath:        e.logPath(c.ID),
		Name:           "/" + c.Name,
		RestartCount:   st.RestartCount,
		Driver:         c.Driver,
		Platform:       "linux",
		HostConfig:     c.HostConfig,
		Config:         c.Config,
		Mounts:         e.mountPoints(c),
		GraphDriver:    &storage.DriverData{Name: c.Driver, Data: map[string]string{}},
		NetworkSettings: &container.NetworkSettings{
			Networks: nil,
		},
	}
	r.NetworkSettings = e.networkSettings(context.Background(), c)
	if c.HostConfig.LogConfig.Type == "none" {
		r.LogPath = ""
	}
	return r
}

// dockerTime formats like Docker: RFC 3339 with nanoseconds, and the zero
// time as Docker writes it.
func dockerTime(t time.Time) string {
	if t.IsZero() {
		return "0001-01-01T00:00:00Z"
	}
	return t.UTC().Format(time.RFC3339Nano)
}

// mountPoints describes the container's mounts as Docker's inspect does.
func (e *Engine) mountPoints(c *Container) []container.MountPoint {
	var out []container.MountPoint
	for _, b := range c.HostConfig.Binds {
		parts := strings.Split(b, ":")
		if len(parts) < 2 {
			continue
		}
		mp := container.MountPoint{Source: parts[0], Destination: parts[1], RW: true, Mode: "", Propagation: mount.PropagationRPrivate}
		if len(parts) == 3 {
			mp.Mode = parts[2]
			for _, o := range strings.Split(parts[2], ",") {
				if o == "ro" {
					mp.RW = false
				}
				switch mount.Propagation(o) {
				case mount.PropagationShared, mount.PropagationRShared, mount.PropagationSlave, mount.PropagationRSlave,
					mount.PropagationPrivate, mount.PropagationRPrivate:
					mp.Propagation = mount.Propagation(o)
				}
			}
		}
		if filepath.IsAbs(parts[0]) {
			mp.Type = mount.TypeBind
		} else {
			mp.Type, mp.Name, mp.Driver = mount.TypeVolume, parts[0], "local"
			mp.Source = filepath.Join(e.volumesDir(), parts[0], "_data")
			mp.Propagation = ""
		}
		out = append(out, mp)
	}
	for _, m := range c.HostConfig.Mounts {
		mp := container.MountPoint{Type: m.Type, Source: m.Source, Destination: m.Target, RW: !m.ReadOnly}
		if m.Type == mount.TypeVolume {
			name := m.Source
			if name == "" {
				name = c.AnonVolumes[m.Target]
			}
			mp.Name, mp.Driver = name, "local"
			mp.Source = filepath.Join(e.volumesDir(), name, "_data")
		}
		if m.BindOptions != nil {
			mp.Propagation = m.BindOptions.Propagation
		}
		out = append(out, mp)
	}
	for dst := range c.HostConfig.Tmpfs {
		out = append(out, container.MountPoint{Type: mount.TypeTmpfs, Destination: dst, RW: true})
	}
	// Anonymous volumes of -v /dst and of the image's VOLUMEs.
	for dst, name := range c.AnonVolumes {
		if !slices.ContainsFunc(out, func(mp container.MountPoint) bool { return mp.Destination == dst }) {
			out = append(out, container.MountPoint{Type: mount.TypeVolume, Name: name, Driver: "local",
				Source: filepath.Join(e.volumesDir(), name, "_data"), Destination: dst, RW: true})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Destination < out[j].Destination })
	if out == nil {
		out = []container.MountPoint{}
	}
	return out
}

// Status is the STATUS column of `ps`: "Up 3 minutes", "Exited (0) 2 hours ago".
func (c *Container) Status(now time.Time) string {
	switch c.State.Status {
	case StatusRunning:
		return "Up " + humanDuration(now.Sub(c.State.StartedAt))
	case StatusPaused:
		return "Up " + humanDuration(now.Sub(c.State.StartedAt)) + " (Paused)"
	case StatusRestarting:
		return fmt.Sprintf("Restarting (%d) %s ago", c.State.ExitCode, humanDuration(now.Sub(c.State.FinishedAt)))
	case StatusExited:
		return fmt.Sprintf("Exited (%d) %s ago", c.State.ExitCode, humanDuration(now.Sub(c.State.FinishedAt)))
	case StatusCreated:
		return "Created"
	}
	return c.State.Status
}

// humanDuration is Docker's go-units HumanDuration.
func humanDuration(d time.Duration) string {
	switch s := int(d.Seconds()); {
	case s < 1:
		return "Less than a second"
	case s == 1:
		return "1 second"
	case s < 60:
		return fmt.Sprintf("%d seconds", s)
	}
	switch m := int(d.Minutes()); {
	case m == 1:
		return "About a minute"
	case m < 60:
		return fmt.Sprintf("%d minutes", m)
	}
	switch h := int(d.Round(time.Hour).Hours()); {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	default:
		return fmt.Sprintf("%d years", int(d.Hours())/24/365)
	}
}
