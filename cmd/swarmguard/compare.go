package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/swarmguard/swarmguard/bench/compare"
)

// cmdCompare times swarmguard classify against ndpiReader on merged pcaps
// of one or more sizes, and with two sizes or more, the cost of the extra
// packets between the smallest and the largest: the steady-state ratio,
// free of either tool's start-up.
func cmdCompare(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench compare")
	globs := fs.String("pcaps", "testdata/ndpi/pcap/*,testdata/captures/*.pcap", "comma-separated globs of captures to merge (Ethernet ones)")
	repeats := fs.String("repeat", "8", "copies of the captures in the merged pcap; a comma-separated list times each size (e.g. 1,8)")
	core := fs.Int("core", 0, "CPU core both processes are pinned to")
	rounds := fs.Int("rounds", 3, "runs of each tool; the fastest counts")
	keep := fs.String("merged", "", "write the (last) merged pcap to this file and keep it (for profiling); default a temporary file")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	var sizes []int
	for _, f := range strings.Split(*repeats, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return usageErr("bench compare: --repeat %q: want positive counts separated by commas", *repeats)
		}
		sizes = append(sizes, n)
	}
	ndpi, err := exec.LookPath("ndpiReader")
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench compare: ndpiReader not found (apt-get install libndpi-bin)")}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench compare: %w", err)
	}
	var files []string
	for _, g := range strings.Split(*globs, ",") {
		m, err := globFiles(g)
		if err != nil {
			return usageErr("bench compare: --pcaps %q: %v", g, err)
		}
		files = append(files, m...)
	}
	if len(files) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("bench compare: no captures match %s", *globs)}
	}
	dir, err := os.MkdirTemp("", "sgcompare")
	if err != nil {
		return fmt.Errorf("bench compare: %w", err)
	}
	defer os.RemoveAll(dir)
	best := func(name string, argv ...string) (compare.Run, error) {
		var b compare.Run
		for i := 0; i < *rounds; i++ {
			r, err := compare.Time(name, *core, argv...)
			if err != nil {
				return r, err
			}
			if b.CPU == 0 || r.CPU < b.CPU {
				b = r
			}
		}
		return b, nil
	}
	type point struct {
		packets int
		nd, sg  compare.Run
	}
	var pts []point
	for i, repeat := range sizes {
		merged := filepath.Join(dir, fmt.Sprintf("merged%d.pcap", repeat))
		if *keep != "" && i == len(sizes)-1 {
			merged = *keep
		}
		n, err := compare.Merge(files, repeat, merged)
		if err != nil {
			return err
		}
		sg, err := best("swarmguard classify", self, "classify", "--quiet", merged)
		if err != nil {
			return err
		}
		nd, err := best("ndpiReader", ndpi, "-q", "-i", merged)
		if err != nil {
			return err
		}
		if merged != *keep {
			os.Remove(merged)
		}
		pts = append(pts, point{n, nd, sg})
		fmt.Fprintf(stdout, "merged pcap: %d packets (%d copies of %d captures: %s), both pinned to core %d, best of %d\n\n", n, repeat, len(files), *globs, *core, *rounds)
		fmt.Fprintf(stdout, "| tool | cpu s | wall s | packets/s (cpu) | ratio to ndpiReader |\n|---|---|---|---|---|\n")
		for _, r := range []compare.Run{nd, sg} {
			fmt.Fprintf(stdout, "| %s | %.3f | %.3f | %.0f | %.2fx |\n", r.Name, r.CPU.Seconds(), r.Wall.Seconds(), r.PPS(n), r.PPS(n)/nd.PPS(n))
		}
		fmt.Fprintln(stdout)
	}
	if len(pts) >= 2 {
		a, b := pts[0], pts[len(pts)-1]
		extra := float64(b.packets - a.packets)
		if extra <= 0 {
			return nil
		}
		nd := float64(b.nd.CPU-a.nd.CPU) / extra
		sg := float64(b.sg.CPU-a.sg.CPU) / extra
		fmt.Fprintf(stdout, "steady state (the %d extra packets from %d to %d copies): ndpiReader %.0f ns/packet, swarmguard %.0f ns/packet: %.2fx\n",
			b.packets-a.packets, sizes[0], sizes[len(sizes)-1], nd, sg, nd/sg)
	}
	return nil
}

func globFiles(g string) ([]string, error) { return filepath.Glob(strings.TrimSpace(g)) }
