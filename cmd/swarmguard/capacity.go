package main

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"

	"github.com/swarmguard/swarmguard/bench/capacity"
)

// cmdCapacity measures the per-packet costs afresh and prints the cores a
// box needs for each line rate given, at 64 B and IMIX.
func cmdCapacity(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench capacity")
	gbps := fs.String("gbps", "10,40", "line rates in Gbit/s, comma-separated")
	driver := fs.Float64("driver-ns", capacity.DefaultDriverNs, "assumed NIC receive + transmit per packet under native XDP, ns")
	socket := fs.Float64("socket-ns", capacity.DefaultSocketNs, "assumed AF_XDP zero-copy receive + transmit per packet, ns")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	var rates []float64
	for _, f := range strings.Split(*gbps, ",") {
		g, err := strconv.ParseFloat(strings.TrimSpace(f), 64)
		if err != nil || g <= 0 || g > 10000 {
			return usageErr("bench capacity: --gbps %q: want line rates in Gbit/s (0 to 10000) separated by commas", *gbps)
		}
		rates = append(rates, g)
	}
	if *driver < 0 || *socket < 0 {
		return usageErr("bench capacity: --driver-ns and --socket-ns must not be negative")
	}
	if os.Geteuid() != 0 {
		return &exitError{code: 2, err: fmt.Errorf("bench capacity: needs root (BPF_PROG_RUN)")}
	}
	root, err := os.Getwd()
	if err != nil {
		return fmt.Errorf("bench capacity: %w", err)
	}
	long, short, err := capacity.BundledCaptures(root)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	in, err := capacity.Measure(capacity.Options{Captures: long, Short: short, DriverNs: *driver, SocketNs: *socket})
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	fmt.Fprint(stdout, capacity.Markdown(in, capacity.Estimate(in, rates)))
	return nil
}
