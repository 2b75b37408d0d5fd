package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/swarmguard/swarmguard/shard"
	"io"
	"os"
	"runtime/debug"
	"runtime/pprof"
	"slices"

	"github.com/swarmguard/swarmguard/bench/accuracy"
	"github.com/swarmguard/swarmguard/classifier"
	"github.com/swarmguard/swarmguard/dataplane"
	"github.com/swarmguard/swarmguard/dataplane/pcapsrc"
)

func loadModel(path string) (*classifier.Model, error) {
	if path == "" {
		return classifier.DefaultModel(), nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("weights: %w", err)
	}
	return classifier.ParseModel(b)
}

func cmdClassify(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("classify")
	workers := fs.Int("workers", 1, "flow shards, one worker each")
	labels := fs.String("labels", "", "labels.jsonl to score against (recall / false positives / unknowns per label)")
	weights := fs.String("weights", "", "weights file (default: the embedded, fitted one)")
	quiet := fs.Bool("quiet", false, "no JSON lines, only the summary")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the run to this file (make pgo builds default.pgo from it)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	if *workers < 1 || *workers > 256 {
		return usageErr("classify: --workers must be 1..256, got %d", *workers)
	}
	if fs.NArg() == 0 {
		return usageErr("classify: no capture files given (- reads one from stdin)")
	}
	if i := slices.Index(fs.Args(), "-"); i >= 0 && slices.Contains(fs.Args()[i+1:], "-") {
		return usageErr("classify: - (stdin) given twice")
	}
	// A batch run keeps little live data and makes much short-lived garbage
	// (records): collect less often.
	debug.SetGCPercent(400)
	model, err := loadModel(*weights)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	var truth *accuracy.Labels
	if *labels != "" {
		if truth, err = accuracy.LoadLabels(*labels); err != nil {
			return &exitError{code: 2, err: err}
		}
	}
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err != nil {
			return &exitError{code: 2, err: fmt.Errorf("cpuprofile: %w", err)}
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return &exitError{code: 2, err: fmt.Errorf("cpuprofile: %w", err)}
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}
	out := bufio.NewWriterSize(stdout, 1<<16)
	defer out.Flush()
	enc := json.NewEncoder(out)
	var (
		results []*shard.Result
		failed  error
	)
	for _, path := range fs.Args() {
		res, err := dataplane.ClassifyFile(path, shard.Options{Workers: *workers, Worker: shard.Config{Model: model}, NoReasons: *quiet})
		if err != nil {
			out.Flush()
			var pe *pcapsrc.Error
			if errors.As(err, &pe) {
				return &exitError{code: 2, err: err}
			}
			return &exitError{code: 2, err: fmt.Errorf("%s: %w", path, err)}
		}
		if !*quiet {
			for i := range res.Flows {
				if err := enc.Encode(&res.Flows[i]); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
			for i := range res.Hosts {
				if err := enc.Encode(&res.Hosts[i]); err != nil {
					return fmt.Errorf("write: %w", err)
				}
			}
		}
		results = append(results, res)
		if res.Err != nil {
			failed = res.Err
			break
		}
	}
	if err := out.Flush(); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	summary(stderr, results)
	if truth != nil {
		sc := accuracy.Score(truth, results)
		sc.WriteTable(stderr)
	}
	if failed != nil {
		return &exitError{code: 2, err: failed}
	}
	return nil
}

func summary(w io.Writer, results []*shard.Result) {
	fmt.Fprintf(w, "%-32s %8s %6s %5s %7s %6s %6s %6s\n", "pcap", "packets", "flows", "p2p", "unknown", "normal", "hosts", "p2p_h")
	for _, r := range results {
		var p2p, unk, norm, hp2p int
		for i := range r.Flows {
			switch r.Flows[i].Label {
			case "p2p":
				p2p++
			case "unknown":
				unk++
			default:
				norm++
			}
		}
		for i := range r.Hosts {
			if r.Hosts[i].Label == "p2p" {
				hp2p++
			}
		}
		fmt.Fprintf(w, "%-32s %8d %6d %5d %7d %6d %6d %6d\n", trunc(r.Pcap, 32), r.Packets, len(r.Flows), p2p, unk, norm, len(r.Hosts), hp2p)
	}
}

func trunc(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n-1] + "~"
}
