package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Bench are the veth harness's programs: a counting sink, a devmap
// forwarder and a forwarder that looks each flow up first.
type Bench struct {
	objs sinkObjects
}

// Close releases the programs and maps.
func (b *Bench) Close() error { return b.objs.Close() }

// LoadBench loads the harness's programs.
func LoadBench() (*Bench, error) {
	var b Bench
	if err := loadSinkObjects(&b.objs, nil); err != nil {
		return nil, fmt.Errorf("load bench programs: %w", err)
	}
	return &b, nil
}

// Sink counts every packet and drops it.
func (b *Bench) Sink() *ebpf.Program { return b.objs.SinkCount }

// Forward redirects every packet to the port SetForward gave its ingress port.
func (b *Bench) Forward() *ebpf.Program { return b.objs.FwdDevmap }

// Lookup is Forward after a flow lookup in a hash map (an entry made on a
// miss): the floor of per-flow state in the kernel.
func (b *Bench) Lookup() *ebpf.Program { return b.objs.FwdLookup }

// SetForward makes packets entering in leave through out.
func (b *Bench) SetForward(in, out int) error {
	if err := b.objs.FwdPort.Put(uint32(in), uint32(out)); err != nil {
		return fmt.Errorf("forward %d -> %d: %w", in, out, err)
	}
	return nil
}

// Counted returns the packets and bytes the sink counted (all CPUs).
func (b *Bench) Counted() (packets, bytes uint64, err error) {
	for k, dst := range []*uint64{&packets, &bytes} {
		var per []uint64
		if err := b.objs.SinkCounts.Lookup(uint32(k), &per); err != nil {
			return 0, 0, fmt.Errorf("sink counters: %w", err)
		}
		for _, v := range per {
			*dst += v
		}
	}
	return packets, bytes, nil
}
