package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/cmd/internal/config"
	"github.com/swarmguard/swarmguard/dataplane/live"
)

// The control socket speaks one JSON request line and one JSON answer per
// connection: {"command":"status"|"reload"|"bans"}.
type controlRequest struct {
	Command string `json:"command"`
}

type controlReply struct {
	Error  string     `json:"error,omitempty"`
	Status *status    `json:"status,omitempty"`
	Bans   []banEntry `json:"bans,omitempty"`
	Pin    string     `json:"pin,omitempty"` // the pin directory of the answering service's ban map
	Said   string     `json:"said,omitempty"`
}

// status is what `swarmguard status` shows.
type status struct {
	Version          string            `json:"version"`
	Config           string            `json:"config"`
	Started          time.Time         `json:"started"`
	Mode             string            `json:"mode"` // bridge or monitor
	MonitorOnly      bool              `json:"monitor_only"`
	Ports            []live.Port       `json:"ports"`
	Workers          int               `json:"workers"`
	PacketsPerSecond float64           `json:"packets_per_second"`
	UserspaceShare   float64           `json:"userspace_share"` // of the packets the kernel saw, the share sent to a worker
	FlowsActive      int               `json:"flows_active"`
	Hosts            int               `json:"hosts"`
	BansActive       int               `json:"bans_active"`
	Decisions        map[string]uint64 `json:"decisions"`
	FailOpen         bool              `json:"fail_open"`
	HeartbeatAgeMs   float64           `json:"heartbeat_age_ms"`
	FailOpenLimitMs  float64           `json:"fail_open_limit_ms"`
	Reloads          uint64            `json:"reloads"`
	ReloadsRejected  uint64            `json:"reloads_rejected"`
	LastReloadError  string            `json:"last_reload_error,omitempty"`
	Recent           []live.Record     `json:"recent"`
}

// banEntry is one ban and, when the running service set it, why.
type banEntry struct {
	Addr    string    `json:"addr"`
	Expires time.Time `json:"expires"`
	Why     *banNote  `json:"why,omitempty"`
}

func (s *service) status() *status {
	st := s.r.Stats()
	cfg := s.r.Config()
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := &status{Version: version(), Config: orFlags(s.path), Started: st.Started, Mode: "bridge", MonitorOnly: cfg.MonitorOnly,
		Ports: s.r.Ports(), Workers: len(st.Workers), FlowsActive: st.Flows.Active, Hosts: st.Hosts,
		Decisions: map[string]uint64{}, FailOpenLimitMs: float64(cfg.FailOpen) / 1e6,
		Reloads: s.reloads.ok, ReloadsRejected: s.reloads.failed, LastReloadError: s.reloads.lastErr, Recent: slices.Clone(s.recent)}
	if cfg.Monitor != "" {
		out.Mode = "monitor"
	}
	for _, l := range []classifier.Label{classifier.P2P, classifier.Normal, classifier.Unknown} {
		out.Decisions[l.String()] = st.ByLabel[l]
	}
	if n, err := s.r.BansActive(); err == nil {
		out.BansActive = n
	}
	if !st.Heartbeat.IsZero() {
		age := now.Sub(st.Heartbeat)
		out.HeartbeatAgeMs = float64(age.Microseconds()) / 1e3
		out.FailOpen = age > cfg.FailOpen
	}
	// Rates over the time since the last status (at least a second), or
	// since the start.
	rx, xsk := st.Kernel[bpf.RX], st.Kernel[bpf.ToXSK]
	prev := s.rate
	if prev.at.IsZero() {
		prev = rateSample{at: st.Started}
	}
	if dt := now.Sub(prev.at).Seconds(); dt >= 1 || s.rate.at.IsZero() {
		s.rate = rateSample{at: now, rx: rx, xsk: xsk, pps: float64(rx-prev.rx) / max(dt, 1e-3)}
		if rx > prev.rx {
			s.rate.userside = float64(xsk-prev.xsk) / float64(rx-prev.rx)
		}
	}
	out.PacketsPerSecond, out.UserspaceShare = s.rate.pps, s.rate.userside
	return out
}

// banList is the kernel's bans with the service's notes.
func (s *service) banList() ([]banEntry, error) {
	bans, err := s.r.Bans()
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	list := make([]banEntry, len(bans))
	for i, b := range bans {
		list[i] = banEntry{Addr: b.Addr.String(), Expires: b.Expires}
		if n, ok := s.bans[list[i].Addr]; ok {
			list[i].Why = &n
		}
	}
	return list, nil
}

func (s *service) serveControl() {
	for {
		c, err := s.sock.Accept()
		if err != nil {
			return // closed at stop
		}
		go s.control(c)
	}
}

func (s *service) control(c net.Conn) {
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var req controlRequest
	line, err := bufio.NewReader(io.LimitReader(c, 4096)).ReadBytes('\n')
	var rep controlReply
	switch {
	case err != nil && len(line) == 0:
		return
	case json.Unmarshal(line, &req) != nil:
		rep.Error = "bad request: want one JSON line"
	case req.Command == "status":
		rep.Status = s.status()
	case req.Command == "reload":
		if err := s.reload("reload"); err != nil {
			rep.Error = err.Error()
		} else {
			rep.Said = "reloaded " + orFlags(s.path)
		}
	case req.Command == "bans":
		if rep.Bans, err = s.banList(); err != nil {
			rep.Error = err.Error()
		}
		rep.Pin = s.r.Config().PinPath
	default:
		rep.Error = fmt.Sprintf("unknown command %q", req.Command)
	}
	json.NewEncoder(c).Encode(&rep)
}

// httpStatus serves the status as JSON beside /metrics.
func (s *service) httpStatus(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(s.status())
}

// ask sends one request over the control socket.
func ask(path, command string) (*controlReply, error) {
	c, err := net.DialTimeout("unix", path, 2*time.Second)
	if err != nil {
		if errors.Is(err, os.ErrPermission) {
			return nil, fmt.Errorf("control socket %s: needs root", path)
		}
		return nil, fmt.Errorf("control socket %s: is swarmguard running? %w", path, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(60 * time.Second))
	if err := json.NewEncoder(c).Encode(controlRequest{Command: command}); err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	var rep controlReply
	if err := json.NewDecoder(c).Decode(&rep); err != nil {
		return nil, fmt.Errorf("control socket: no answer: %w", err)
	}
	if rep.Error != "" {
		return &rep, errors.New(rep.Error)
	}
	return &rep, nil
}

func cmdStatus(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("status")
	asJSON := fs.Bool("json", false, "the status as JSON")
	sock := fs.String("socket", config.Default().StatusSocket, "control socket of the running swarmguard")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("status: takes no arguments")
	}
	rep, err := ask(*sock, "status")
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("status: %w", err)}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep.Status)
	}
	printStatus(stdout, rep.Status)
	return nil
}

func printStatus(w io.Writer, st *status) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	var ports []string
	for _, p := range st.Ports {
		ports = append(ports, fmt.Sprintf("%s (%s XDP)", p.Name, p.Mode))
	}
	yes := map[bool]string{true: "YES", false: "no"}
	fmt.Fprintf(tw, "swarmguard\t%s\n", st.Version)
	fmt.Fprintf(tw, "running\tsince %s (%s)\n", st.Started.Format(time.RFC3339), time.Since(st.Started).Round(time.Second))
	fmt.Fprintf(tw, "config\t%s\n", st.Config)
	fmt.Fprintf(tw, "mode\t%s: %s; %d workers; monitor-only %s\n", st.Mode, strings.Join(ports, ", "), st.Workers, yes[st.MonitorOnly])
	fmt.Fprintf(tw, "traffic\t%.0f packets/s, %.1f%% to userspace\n", st.PacketsPerSecond, 100*st.UserspaceShare)
	fmt.Fprintf(tw, "flows\t%d active; decided %d p2p, %d normal, %d unknown\n", st.FlowsActive, st.Decisions["p2p"], st.Decisions["normal"], st.Decisions["unknown"])
	fmt.Fprintf(tw, "hosts\t%d\n", st.Hosts)
	fmt.Fprintf(tw, "bans\t%d active\n", st.BansActive)
	fmt.Fprintf(tw, "fail-open\t%s (heartbeat %.0f ms ago, limit %.0f ms)\n", yes[st.FailOpen], st.HeartbeatAgeMs, st.FailOpenLimitMs)
	fmt.Fprintf(tw, "reloads\t%d, %d rejected\n", st.Reloads, st.ReloadsRejected)
	if st.LastReloadError != "" {
		fmt.Fprintf(tw, "last rejected reload\t%s\n", strings.ReplaceAll(st.LastReloadError, "\n", "; "))
	}
	tw.Flush()
	if len(st.Recent) == 0 {
		fmt.Fprintln(w, "last decisions: none yet")
		return
	}
	fmt.Fprintln(w, "last decisions:")
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  TIME\tPROTO\tA\tB\tLABEL\tP\tACTION\tREASONS")
	for i := len(st.Recent) - 1; i >= 0; i-- {
		r := &st.Recent[i]
		at := r.Time
		if t, err := time.Parse(time.RFC3339Nano, r.Time); err == nil {
			at = t.Local().Format("15:04:05")
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%.2f\t%s\t%s\n", at, r.Proto, r.A, r.B, r.Label, r.P, r.Action, reasonList(r.Reasons, 3))
	}
	tw.Flush()
}

func reasonList(rs []classifier.Reason, n int) string {
	var out []string
	for _, r := range rs[:min(n, len(rs))] {
		out = append(out, fmt.Sprintf("%s%+.1f", r.Feature, r.Contribution))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func cmdReload(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("reload")
	sock := fs.String("socket", config.Default().StatusSocket, "control socket of the running swarmguard")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("reload: takes no arguments")
	}
	rep, err := ask(*sock, "reload")
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("reload: %w", err)}
	}
	fmt.Fprintf(stdout, "swarmguard: %s\n", rep.Said)
	return nil
}

// printBans lists bans, with why and when when the service knows.
func printBans(w io.Writer, list []banEntry, only string) {
	slices.SortFunc(list, func(a, b banEntry) int { return strings.Compare(a.Addr, b.Addr) })
	if only != "" {
		list = slices.DeleteFunc(list, func(b banEntry) bool { return b.Addr != only })
		if len(list) == 0 {
			fmt.Fprintf(w, "%s is not banned\n", only)
			return
		}
	}
	if len(list) == 0 {
		fmt.Fprintln(w, "no bans")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tEXPIRES\tLEFT\tSET\tFLOW\tP\tWHY")
	for _, b := range list {
		left := time.Until(b.Expires).Round(time.Second)
		set, flow, p, why := "-", "-", "-", "set by hand or by an earlier run"
		if b.Why != nil {
			set = b.Why.Set.Local().Format("2006-01-02 15:04:05")
			flow = fmt.Sprintf("%016x with %s", b.Why.FlowID, b.Why.Peer)
			p = fmt.Sprintf("%.2f", b.Why.P)
			why = reasonList(b.Why.Reasons, 3)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", b.Addr, b.Expires.Local().Format("2006-01-02 15:04:05"), left, set, flow, p, why)
	}
	tw.Flush()
}

// bansFromMap reads the pinned map when no service answers.
func bansFromMap(bans *bpf.Bans) ([]banEntry, error) {
	list, err := bans.List()
	if err != nil {
		return nil, err
	}
	now := bpf.Monotonic()
	var out []banEntry
	for a, exp := range list {
		if exp > now {
			out = append(out, banEntry{Addr: a.String(), Expires: time.Now().Add(time.Duration(exp - now))})
		}
	}
	return out, nil
}
