package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/cmd/internal/config"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/dataplane/xsk"
	"github.com/swarmguard/swarmguard/shard"
)

// cmdRun runs the live dataplane until SIGINT or SIGTERM; SIGHUP reloads.
func cmdRun(args []string, stdout, stderr io.Writer) error {
	c, path, set, err := loadRunConfig(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := liveConfig(c)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if miss, err := missingCaps(runCaps); err != nil || miss != "" {
		return &exitError{code: 2, err: fmt.Errorf("run: needs root or the capabilities %s (XDP, AF_XDP and bpffs)%s", miss, errSuffix(err))}
	}
	if c.MemoryLimit > 0 {
		debug.SetMemoryLimit(c.MemoryLimit)
	}
	debug.SetGCPercent(c.GCPercent)
	svc, err := startService(c, path, set, cfg, stdout, stderr)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("run: %w", err)}
	}
	sig := make(chan os.Signal, 4)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	fmt.Fprintf(stderr, "swarmguard: running; SIGINT or SIGTERM stops, SIGHUP reloads\n")
	notifySystemd("READY=1\nSTATUS=forwarding and classifying")
	for s := range sig {
		if s != syscall.SIGHUP {
			break
		}
		svc.reload("SIGHUP")
	}
	// A second signal while stopping would kill the process half-way
	// (the program attached, the bridge failing open): it is only noted.
	go func() {
		for range sig {
			fmt.Fprintf(stderr, "swarmguard: stopping; the XDP program is being detached\n")
		}
	}()
	notifySystemd("STOPPING=1")
	err = svc.stop()
	signal.Stop(sig)
	return err
}

func errSuffix(err error) string {
	if err != nil {
		return ": " + err.Error()
	}
	return ""
}

// loadRunConfig reads run's configuration: the file (--config, or the
// default path when it exists) under the flags the line sets. Every problem
// is reported, one line each, before any system access.
// It returns the file read ("" for none) and the flags set, for reloads.
func loadRunConfig(args []string, stderr io.Writer) (*config.Config, string, [][2]string, error) {
	fs := newFlagSet("run")
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+" when it exists)")
	config.Default().Flags(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return nil, "", nil, err
	}
	if fs.NArg() > 0 {
		return nil, "", nil, usageErr("run: takes no arguments, got %q (see -h)", fs.Arg(0))
	}
	var set [][2]string
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "config" {
			set = append(set, [2]string{f.Name, f.Value.String()})
		}
	})
	file := *path
	if file == "" {
		if _, err := os.Stat(config.DefaultPath); err == nil {
			file = config.DefaultPath
		}
	}
	c, errs := config.Load(file, set)
	if len(errs) > 0 {
		return nil, "", nil, usageErr("run: %v", problems(file, errs))
	}
	return c, file, set, nil
}

// problems makes one error of a configuration's problems; the first says
// where, and how many more there are (config check lists them all).
func problems(file string, errs []error) error {
	where := ""
	if file != "" {
		where = file + ": "
	}
	if len(errs) == 1 {
		return fmt.Errorf("%s%w", where, errs[0])
	}
	return fmt.Errorf("%s%w (and %d more problems: swarmguard config check)", where, errs[0], len(errs)-1)
}

// liveConfig turns a checked configuration into the runner's.
func liveConfig(c *config.Config) (live.Config, error) {
	m, err := loadModel(c.Weights)
	if err != nil {
		return live.Config{}, fmt.Errorf("run: %w", err)
	}
	if c.P2PAt != 0 || c.NormalAt != 0 {
		cp := *m
		if c.P2PAt != 0 {
			cp.THigh = c.P2PAt
		}
		if c.NormalAt != 0 {
			cp.TLow = c.NormalAt
		}
		if cp.TLow >= cp.THigh {
			return live.Config{}, fmt.Errorf("run: classifier thresholds: normal %g is not under p2p %g", cp.TLow, cp.THigh)
		}
		m = &cp
	}
	cfg := live.Config{Monitor: c.Monitor, Queues: c.Queues, Workers: c.Workers, Generic: c.Generic, FailOpen: c.FailOpen,
		BanFor: c.BanFor, BanLocal: c.BanLocal, MonitorOnly: c.MonitorOnly, PinPath: c.Pin,
		Local: c.Local, AllowNets: c.AllowNets, AllowPorts: c.AllowPorts, Model: m,
		Flows: shard.TableConfig{Capacity: c.FlowTable, NewPerSecond: newFlows(c.NewFlows)}, MaxHosts: c.MaxHosts, UserPPS: newFlows(c.UserPPS),
		Socket: xsk.Options{Frames: c.Frames, RingSize: c.Ring}}
	if len(c.Bridge) == 2 {
		cfg.Bridge = [2]string{c.Bridge[0], c.Bridge[1]}
	}
	return cfg, nil
}

// newFlows maps the option (0: no bound) to the runner's (negative: no bound).
func newFlows(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

func kernelCounters(k [bpf.NumCounters]uint64) string {
	var b strings.Builder
	for c := bpf.Counter(0); c < bpf.NumCounters; c++ {
		if k[c] > 0 {
			fmt.Fprintf(&b, "%s=%d ", c, k[c])
		}
	}
	return strings.TrimSpace(b.String())
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// cmdBans reads and edits the pinned ban map.

func cmdBans(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bans")
	pin := fs.String("pin", bpf.DefaultPinPath, "bpffs directory of the pinned ban map")
	dur := fs.Duration("for", live.DefaultBanFor, "ban duration (add)")
	sock := fs.String("socket", config.Default().StatusSocket, "control socket of the running swarmguard (list, show: why each ban was set)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	a := fs.Args()
	if len(a) == 0 {
		return usageErr("bans: want list, show IP, add IP, del IP or flush")
	}
	// Usage errors before any system access.
	var addr netip.Addr
	switch a[0] {
	case "list", "flush":
		if len(a) != 1 {
			return usageErr("bans %s: takes no argument", a[0])
		}
	case "add", "del", "show":
		if len(a) != 2 {
			return usageErr("bans %s: want one IP address", a[0])
		}
		var err error
		if addr, err = netip.ParseAddr(a[1]); err != nil {
			return usageErr("bans %s: %q is not an IP address", a[0], a[1])
		}
	default:
		return usageErr("bans: unknown action %q (list, show, add, del, flush)", a[0])
	}
	if *dur <= 0 || *dur > config.MaxBan {
		return usageErr("bans: --for %v: want more than 0 and at most %v", *dur, config.MaxBan)
	}
	if os.Geteuid() != 0 {
		return &exitError{code: 2, err: errors.New("bans: needs root (bpffs)")}
	}
	if a[0] == "list" || a[0] == "show" {
		only := ""
		if a[0] == "show" {
			only = addr.Unmap().String()
		}
		// The running service knows why; the map alone only knows until
		// when. Only a service whose map this is answers for it.
		if rep, err := ask(*sock, "bans"); err == nil && filepath.Clean(rep.Pin) == filepath.Clean(*pin) {
			printBans(stdout, rep.Bans, only)
			return nil
		}
	}
	bans, err := bpf.OpenBans(*pin)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer bans.Close()
	switch a[0] {
	case "list", "show":
		list, err := bansFromMap(bans)
		if err != nil {
			return err
		}
		only := ""
		if a[0] == "show" {
			only = addr.Unmap().String()
		}
		printBans(stdout, list, only)
	case "add":
		if err := bans.Add(addr, bpf.Monotonic()+uint64(*dur)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "banned %s until %s (%v)\n", addr, time.Now().Add(*dur).Format(time.RFC3339), *dur)
	case "del":
		list, err := bans.List()
		if err != nil {
			return err
		}
		if _, ok := list[addr.Unmap()]; !ok {
			if _, ok := list[addr]; !ok {
				fmt.Fprintf(stdout, "%s was not banned\n", addr)
				return nil
			}
		}
		if err := bans.Del(addr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "unbanned %s\n", addr)
	case "flush":
		list, err := bans.List()
		if err != nil {
			return err
		}
		if err := bans.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "removed %d bans\n", len(list))
	}
	return nil
}
