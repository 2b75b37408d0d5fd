package main

import (
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/dataplane/live"
	"github.com/swarmguard/swarmguard/dataplane/xsk"
)

// cmdRun runs the live dataplane until SIGINT or SIGTERM.
func cmdRun(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("run")
	bridge := fs.String("bridge", "", "inline bridge: IF_A,IF_B")
	monitor := fs.String("monitor", "", "mirror/SPAN port: classify and ban, forward nothing")
	queues := fs.Int("queues", 0, "rx queues per port (default: all the port has)")
	frames := fs.Int("frames", 0, "UMEM frames per socket (default 8192)")
	ring := fs.Int("ring", 0, "entries per AF_XDP ring (default 2048)")
	generic := fs.Bool("generic", false, "force generic (skb) XDP")
	failOpen := fs.Duration("fail-open", live.DefaultFailOpen, "heartbeat age after which the kernel forwards/passes everything")
	banFor := fs.Duration("ban-for", live.DefaultBanFor, "ban duration")
	banLocal := fs.Bool("ban-local", false, "ban the local host of a p2p flow instead of its remote peer")
	monitorOnly := fs.Bool("monitor-only", false, "log decisions; drop and ban nothing")
	local := fs.String("local", strings.Join(live.DefaultLocal(), ","), "networks of local hosts, comma-separated")
	allowNets := fs.String("allow-net", "", "networks never dropped or banned, comma-separated")
	allowPorts := fs.String("allow-port", "", "ports never dropped or banned, comma-separated")
	records := fs.String("records", "-", "decision records (JSON lines): - for stdout, or a file")
	pin := fs.String("pin", bpf.DefaultPinPath, "bpffs directory for the ban map and XDP links")
	weights := fs.String("weights", "", "weights file (default: the embedded one)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	// Ranges, before any system access: a negative ban would never expire,
	// a zero fail-open would forward everything at once.
	switch {
	case *failOpen < 10*time.Millisecond || *failOpen > time.Hour:
		return usageErr("run: --fail-open %v: want 10ms to 1h", *failOpen)
	case *banFor <= 0 || *banFor > maxBan:
		return usageErr("run: --ban-for %v: want more than 0 and at most %v", *banFor, maxBan)
	case *queues < 0 || *queues > 256:
		return usageErr("run: --queues %d: want 0 (all the port has) to 256", *queues)
	case *frames < 0 || *frames > 1<<20:
		return usageErr("run: --frames %d: want 0 (default) to %d", *frames, 1<<20)
	case *ring < 0 || *ring > 1<<16 || *ring&(*ring-1) != 0:
		return usageErr("run: --ring %d: want 0 (default) or a power of two up to %d", *ring, 1<<16)
	}
	cfg := live.Config{Monitor: *monitor, Queues: *queues, Generic: *generic, FailOpen: *failOpen, BanFor: *banFor,
		BanLocal: *banLocal, MonitorOnly: *monitorOnly, PinPath: *pin, Log: stderr,
		Socket: xsk.Options{Frames: *frames, RingSize: *ring}}
	if *bridge != "" {
		ports := strings.Split(*bridge, ",")
		if len(ports) != 2 {
			return usageErr("run: --bridge wants two ports, IF_A,IF_B")
		}
		cfg.Bridge = [2]string{ports[0], ports[1]}
	}
	if (*bridge == "") == (*monitor == "") {
		return usageErr("run: give either --bridge IF_A,IF_B or --monitor IF")
	}
	var err error
	if cfg.Local, err = prefixes(*local); err != nil {
		return usageErr("run: --local: %v", err)
	}
	if cfg.AllowNets, err = prefixes(*allowNets); err != nil {
		return usageErr("run: --allow-net: %v", err)
	}
	for _, p := range splitList(*allowPorts) {
		n, err := strconv.ParseUint(p, 10, 16)
		if err != nil {
			return usageErr("run: --allow-port %q: not a port", p)
		}
		cfg.AllowPorts = append(cfg.AllowPorts, uint16(n))
	}
	if cfg.Model, err = loadModel(*weights); err != nil {
		return &exitError{code: 2, err: err}
	}
	if os.Geteuid() != 0 {
		return &exitError{code: 2, err: errors.New("run: needs root (XDP, AF_XDP and bpffs)")}
	}
	cfg.Records = stdout
	if *records != "-" {
		f, err := os.OpenFile(*records, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("run: records: %w", err)}
		}
		defer f.Close()
		cfg.Records = f
	}
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

func prefixes(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range splitList(s) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, fmt.Errorf("%q is not a network", p)
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, pfx)
	}
	return out, nil
}

// cmdBans reads and edits the pinned ban map.
// maxBan bounds ban durations: a year.
const maxBan = 365 * 24 * time.Hour

func cmdBans(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bans")
	pin := fs.String("pin", bpf.DefaultPinPath, "bpffs directory of the pinned ban map")
	dur := fs.Duration("for", live.DefaultBanFor, "ban duration (add)")
	// Flags may come before, between or after the action and the address.
	var a []string
	for rest := args; ; {
		if err := parseFlags(fs, rest, stderr); err != nil {
			return err
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		a, rest = append(a, rest[0]), rest[1:]
	}
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
	if *dur <= 0 || *dur > maxBan {
		return usageErr("bans: --for %v: want more than 0 and at most %v", *dur, maxBan)
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
