package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/swarmguard/swarmguard/bench/compare"
)

// cmdCompare times swarmguard classify against ndpiReader on one merged pcap.
func cmdCompare(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench compare", stderr)
	corpus := fs.String("corpus", "testdata/ndpi/pcap", "captures to merge (Ethernet ones)")
	repeat := fs.Int("repeat", 8, "copies of the corpus in the merged pcap")
	core := fs.Int("core", 0, "CPU core both processes are pinned to")
	rounds := fs.Int("rounds", 3, "runs of each tool; the fastest counts")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	ndpi, err := exec.LookPath("ndpiReader")
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("bench compare: ndpiReader not found (apt-get install libndpi-bin)")}
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench compare: %w", err)
	}
	files, _ := filepath.Glob(filepath.Join(*corpus, "*"))
	if len(files) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("bench compare: no captures in %s", *corpus)}
	}
	dir, err := os.MkdirTemp("", "sgcompare")
	if err != nil {
		return fmt.Errorf("bench compare: %w", err)
	}
	defer os.RemoveAll(dir)
	merged := filepath.Join(dir, "merged.pcap")
	n, err := compare.Merge(files, *repeat, merged)
	if err != nil {
		return err
	}
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
	sg, err := best("swarmguard classify", self, "classify", "--quiet", merged)
	if err != nil {
		return err
	}
	nd, err := best("ndpiReader", ndpi, "-q", "-i", merged)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "merged pcap: %d packets (%d copies of %s), both pinned to core %d, best of %d\n\n", n, *repeat, *corpus, *core, *rounds)
	fmt.Fprintf(stdout, "| tool | cpu s | wall s | packets/s (cpu) | ratio to ndpiReader |\n|---|---|---|---|---|\n")
	for _, r := range []compare.Run{nd, sg} {
		fmt.Fprintf(stdout, "| %s | %.3f | %.3f | %.0f | %.2fx |\n", r.Name, r.CPU.Seconds(), r.Wall.Seconds(), r.PPS(n), r.PPS(n)/nd.PPS(n))
	}
	return nil
}
