package bpf

import (
	"os"
	"regexp"
	"strconv"
	"testing"

	"github.com/cilium/ebpf"
)

// The verifier walks every path of the program; past a million
// instructions it refuses it. The parse of the IP header is a global
// function (parse_ip), checked once whatever VLAN stack or tunnel led to
// it: with it inline, opening MPLS and Geneve made the verifier process
// 737k instructions. This keeps the program far from the limit, so the next
// encapsulation does not find it at the edge.
func TestVerifierHeadroom(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to load BPF programs")
	}
	spec, err := loadXdp()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{Programs: ebpf.ProgramOptions{LogLevel: ebpf.LogLevelStats}})
	if err != nil {
		t.Skip(err)
	}
	defer coll.Close()
	m := regexp.MustCompile(`processed (\d+) insns`).FindStringSubmatch(coll.Programs["swarmguard"].VerifierLog)
	if m == nil {
		t.Fatalf("no statistics in the verifier log:\n%s", coll.Programs["swarmguard"].VerifierLog)
	}
	n, _ := strconv.Atoi(m[1])
	if n > 200_000 {
		t.Fatalf("the verifier processed %d instructions (limit 1,000,000): split the parser further before adding to it", n)
	}
	t.Logf("the verifier processed %d instructions of its 1,000,000", n)
}
