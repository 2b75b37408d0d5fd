package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/dataplane/xsk"
	"github.com/swarmguard/swarmguard/cmd/internal/config"
	"github.com/swarmguard/swarmguard/shard"
)

// cmdRun runs the live dataplane until SIGINT or SIGTERM; SIGHUP reloads.
func cmdRun(args []string, stdout, stderr io.Writer) error {
	c, path, err := loadRunConfig(args, stderr)
	if err != nil {
		return err
	}
	cfg, err := liveConfig(c)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if os.Geteuid() != 0 {
		return &exitError{code: 2, err: errors.New("run: needs root (XDP, AF_XDP and bpffs)")}
	}
	cfg.Log = stderr
	cfg.Records = stdout
	if c.LogFile != "-" {
		f, err := os.OpenFile(c.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("run: records: %w", err)}
		}
		defer f.Close()
		cfg.Records = f
	}
	_ = path
	r, err := live.Start(cfg)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("run: %w", err)}
	}
	sig := make(chan os.Signal, 2)
	// SIGHUP used to kill the dataplane (the program stayed attached and the
	// bridge failed open): it is caught and, until reload exists, ignored.
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	fmt.Fprintf(stderr, "swarmguard: running; SIGINT or SIGTERM stops\n")
	for s := range sig {
		if s != syscall.SIGHUP {
			break
		}
		fmt.Fprintf(stderr, "swarmguard: SIGHUP: reload is not supported yet; the running configuration stays\n")
	}
	signal.Stop(sig)
	r.Stop()
	st := r.Stats()
	fmt.Fprintf(stderr, "swarmguard: stopped: %d packets in workers, %d forwarded by workers, kernel %v, %d decisions, %d bans\n",
		st.Worker.Packets, st.TxFrames, kernelCounters(st.Kernel), st.Decisions, st.Bans)
	return nil
}

// loadRunConfig reads run's configuration: the file (--config, or the
// default path when it exists) under the flags the line sets. Every problem
// is reported, one line each, before any system access.
func loadRunConfig(args []string, stderr io.Writer) (*config.Config, string, error) {
	fs := newFlagSet("run")
	path := fs.String("config", "", "configuration file (default "+config.DefaultPath+" when it exists)")
	config.Default().Flags(fs)
	if err := parseFlags(fs, args, stderr); err != nil {
		return nil, "", err
	}
	if fs.NArg() > 0 {
		return nil, "", usageErr("run: takes no arguments, got %q (see -h)", fs.Arg(0))
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
		return nil, "", usageErr("run: %v", problems(file, errs))
	}
	return c, file, nil
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
	cfg := live.Config{Monitor: c.Monitor, Queues: c.Queues, Generic: c.Generic, FailOpen: c.FailOpen,
		BanFor: c.BanFor, BanLocal: c.BanLocal, MonitorOnly: c.MonitorOnly, PinPath: c.Pin,
		Local: c.Local, AllowNets: c.AllowNets, AllowPorts: c.AllowPorts, Model: m,
		Flows:  shard.TableConfig{Capacity: c.FlowTable},
		Socket: xsk.Options{Frames: c.Frames, RingSize: c.Ring}}
	if len(c.Bridge) == 2 {
		cfg.Bridge = [2]string{c.Bridge[0], c.Bridge[1]}
	}
	return cfg, nil
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
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	a := fs.Args()
	if len(a) == 0 {
		return usageErr("bans: want list, add IP, del IP or flush")
	}
	// Usage errors before any system access.
	switch a[0] {
	case "list", "flush":
		if len(a) != 1 {
			return usageErr("bans %s: takes no argument", a[0])
		}
	case "add", "del":
		if len(a) != 2 {
			return usageErr("bans %s: want one IP address", a[0])
		}
		if _, err := netip.ParseAddr(a[1]); err != nil {
			return usageErr("bans %s: %q is not an IP address", a[0], a[1])
		}
	default:
		return usageErr("bans: unknown action %q (list, add, del, flush)", a[0])
	}
	if *dur <= 0 || *dur > config.MaxBan {
		return usageErr("bans: --for %v: want more than 0 and at most %v", *dur, config.MaxBan)
	}
	if os.Geteuid() != 0 {
		return &exitError{code: 2, err: errors.New("bans: needs root (bpffs)")}
	}
	bans, err := bpf.OpenBans(*pin)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer bans.Close()
	ip := func() (netip.Addr, error) {
		if len(a) != 2 {
			return netip.Addr{}, usageErr("bans %s: want one IP address", a[0])
		}
		addr, err := netip.ParseAddr(a[1])
		if err != nil {
			return addr, usageErr("bans %s: %q is not an IP address", a[0], a[1])
		}
		return addr, nil
	}
	switch a[0] {
	case "list":
		list, err := bans.List()
		if err != nil {
			return err
		}
		now := bpf.Monotonic()
		for addr, exp := range list {
			left := time.Duration(0)
			if exp > now {
				left = time.Duration(exp - now)
			}
			fmt.Fprintf(stdout, "%s\t%s\n", addr, left.Round(time.Second))
		}
	case "add":
		addr, err := ip()
		if err != nil {
			return err
		}
		return bans.Add(addr, bpf.Monotonic()+uint64(*dur))
	case "del":
		addr, err := ip()
		if err != nil {
			return err
		}
		return bans.Del(addr)
	case "flush":
		return bans.Flush()
	default:
		return usageErr("bans: unknown action %q (list, add, del, flush)", a[0])
	}
	return nil
}
