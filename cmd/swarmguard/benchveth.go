package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/swarmguard/swarmguard/bench/gen"
	"github.com/swarmguard/swarmguard/bench/latency"
	"github.com/swarmguard/swarmguard/bench/memory"
	"github.com/swarmguard/swarmguard/bench/veth"
	"github.com/swarmguard/swarmguard/bpf"
)

// cmdGen is the harness's generator (run inside gen-ns); prints a JSON result.
func cmdGen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench gen")
	o := gen.Options{}
	fs.StringVar(&o.Interface, "iface", "", "interface to send on")
	fs.IntVar(&o.Queues, "queues", 1, "tx queues")
	fs.IntVar(&o.Flows, "flows", 1024, "concurrent flows")
	fs.IntVar(&o.Hosts, "hosts", 16, "source hosts")
	fs.IntVar(&o.Train, "train", 1, "packets of a flow in a row (1: the flows in turn)")
	fs.IntVar(&o.Rate, "rate", 0, "packets per second (0: flat out)")
	fs.Uint64Var(&o.Packets, "packets", 1_000_000, "packets at most")
	secs := fs.Float64("seconds", 5, "seconds at most")
	mix := fs.String("mix", "", "captures whose frame sizes to use, comma-separated (default: 64-byte frames)")
	fs.StringVar(&o.Flood, "flood", "", "every packet a new flow: udp, syn, udp6, syn6 or mix")
	fs.Uint64Var(&o.Seed, "seed", 0, "varies a flood's tuples between runs")
	fs.IntVar(&o.FloodHosts, "flood-hosts", 0, "draw a flood's addresses from this many hosts a side (0: new hosts too)")
	fs.BoolVar(&o.Spoof, "spoof", false, "send the spoofing corpus once: a forged tracker exchange, unanswered DHT queries, SYNs and MSE-shaped packets")
	fs.BoolVar(&o.Malformed, "malformed", false, "send the malformed-frame corpus (truncated headers, lying lengths, VLAN stacks, runts, jumbos)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if o.Interface == "" {
		return usageErr("bench gen: --iface is required")
	}
	o.Duration = time.Duration(*secs * float64(time.Second))
	o.Pcaps = splitList(*mix)
	r, err := gen.Run(o)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	return json.NewEncoder(stdout).Encode(r)
}

// cmdSink counts what arrives at an interface in XDP (run inside sink-ns).
// It prints "ready", then "PACKETS BYTES" for every line read on stdin, and
// detaches at EOF or SIGTERM.
func cmdSink(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench sink")
	iface := fs.String("iface", "", "interface to count on")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	ifi, err := net.InterfaceByName(*iface)
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench sink: %w", err)}
	}
	b, err := bpf.LoadBench()
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	defer b.Close()
	l, err := link.AttachXDP(link.XDPOptions{Program: b.Sink(), Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench sink: attach to %s: %w", *iface, err)}
	}
	defer l.Close()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, os.Interrupt)
	lines := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- struct{}{}
		}
		close(lines)
	}()
	fmt.Fprintln(stdout, "ready")
	for {
		select {
		case _, ok := <-lines:
			if !ok {
				return nil
			}
			p, by, err := b.Counted()
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%d %d\n", p, by)
		case <-sig:
			return nil
		}
	}
}

// cmdVeth runs the harness and prints (and appends) its table.
func cmdVeth(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench veth")
	o := veth.Options{Log: stderr}
	secs := fs.Float64("seconds", 3, "seconds per configuration")
	fs.IntVar(&o.Rate, "rate", 0, "generator packets per second (0: flat out)")
	fs.IntVar(&o.Flows, "flows", 4096, "concurrent flows")
	fs.IntVar(&o.Hosts, "hosts", 64, "source hosts")
	fs.IntVar(&o.Train, "train", 1, "packets of a flow in a row (1: the flows in turn)")
	configs := fs.String("configs", strings.Join(veth.AllConfigs, ","), "configurations to run")
	sizes := fs.String("sizes", "64,mix", "frame sizes: 64 and/or mix")
	mix := fs.String("mix", "testdata/ndpi/pcap/*,testdata/captures/*.pcap", "globs of captures whose sizes make the mix")
	fs.BoolVar(&o.Latency, "latency", true, "also measure round trips through each path (400 UDP ping-pongs)")
	appendTo := fs.String("append", "", "append the table with the machine description to this file (BENCHMARKS.md)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if os.Geteuid() != 0 {
		return &exitError{code: 2, err: fmt.Errorf("bench veth: needs root (namespaces, XDP, AF_XDP)")}
	}
	o.Duration = time.Duration(*secs * float64(time.Second))
	o.Configs, o.Sizes = splitList(*configs), splitList(*sizes)
	for _, g := range splitList(*mix) {
		m, _ := globFiles(g)
		o.Mix = append(o.Mix, m...)
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	o.Self = self
	// Ctrl-C: the harness stops after the configuration under way and
	// removes its namespaces, links, programs and pins before exiting.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(sig)
	o.Stop = sig
	rows, err := veth.Run(o)
	table := veth.Markdown(rows)
	fmt.Fprint(stdout, table)
	if err != nil {
		return &exitError{code: 1, err: fmt.Errorf("bench veth: %w", err)}
	}
	if *appendTo != "" {
		f, err := os.OpenFile(*appendTo, os.O_APPEND|os.O_WRONLY|os.O_CREATE, 0o644)
		if err != nil {
			return fmt.Errorf("bench veth: %w", err)
		}
		defer f.Close()
		fmt.Fprintf(f, "\n### bench veth, %s\n\nMachine: %s. Command: `swarmguard bench veth %s`.\n\n%s",
			time.Now().UTC().Format("2006-01-02 15:04 UTC"), machine(), strings.Join(args, " "), table)
	}
	return nil
}

// cmdEcho runs the latency probe's UDP echo (inside sink-ns).
func cmdEcho(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench echo")
	addr := fs.String("listen", ":7", "address to echo on")
	secs := fs.Float64("seconds", 60, "how long to serve")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	return latency.Echo(*addr, time.Duration(*secs*float64(time.Second)))
}

// cmdPing measures round trips to an echo (inside gen-ns); prints JSON.
func cmdPing(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench ping")
	to := fs.String("to", "", "echo address")
	n := fs.Int("count", 500, "probes")
	every := fs.Duration("interval", time.Millisecond, "pause between probes")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	r, err := latency.Ping(*to, *n, *every)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	return json.NewEncoder(stdout).Encode(r)
}

// cmdMemory reports resident memory and bytes per flow with N flows (run it
// as its own process: the figure is this process's RSS).
func cmdMemory(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench memory")
	flows := fs.Int("flows", 1_000_000, "concurrent flows")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	r, err := memory.Measure(*flows)
	if err != nil {
		return err
	}
	return json.NewEncoder(stdout).Encode(r)
}

func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				model = strings.TrimSpace(strings.SplitN(l, ":", 2)[1])
				break
			}
		}
	}
	var u syscall.Utsname
	syscall.Uname(&u)
	rel := make([]byte, 0, 65)
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		rel = append(rel, byte(c))
	}
	return fmt.Sprintf("%d x %s, Linux %s, %s", runtime.NumCPU(), model, rel, runtime.Version())
}
