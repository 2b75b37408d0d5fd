package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"github.com/swarmguard/swarmguard/shard"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/swarmguard/swarmguard/bench/accuracy"
	"github.com/swarmguard/swarmguard/bench/capture"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
)

// cmdLabels writes labels.jsonl for the harness's captures: every flow the
// engine sees, labelled from capture.sh's address plan (ground truth by
// construction), in the corpus's label format.
func cmdLabels(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("bench labels")
	dir := fs.String("captures", "testdata/captures", "directory of capture.sh pcaps")
	out := fs.String("out", "", "file to write (default DIR/labels.jsonl; - for stdout)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	files, _ := filepath.Glob(filepath.Join(*dir, "*.pcap"))
	if len(files) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("bench labels: no pcaps in %s", *dir)}
	}
	sort.Strings(files)
	var w io.Writer = stdout
	if *out != "-" {
		path := *out
		if path == "" {
			path = filepath.Join(*dir, "labels.jsonl")
		}
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("bench labels: %w", err)
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriter(w)
	enc := json.NewEncoder(bw)
	for _, file := range files {
		res, err := dataplane.ClassifyFile(file, shard.Options{Worker: shard.Config{Model: classifier.DefaultModel()}, NoReasons: true})
		if err != nil {
			return err
		}
		for _, f := range res.Flows {
			truth := capture.Label(netip.MustParseAddrPort(f.A), netip.MustParseAddrPort(f.B))
			if err := enc.Encode(accuracy.Label{Pcap: f.Pcap, Proto: f.Proto, A: f.A, B: f.B, VLAN: f.VLAN, Label: truth, App: "capture.sh", Pkts: int(f.Packets)}); err != nil {
				return err
			}
		}
	}
	return bw.Flush()
}
