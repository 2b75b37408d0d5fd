package live

import (
	"encoding/binary"

	"github.com/swarmguard/swarmguard/bpf"
	"github.com/swarmguard/swarmguard/shard"
)

// kernelKey is k as the XDP program's bypass map keys it: the same fields
// in the same order (shard.Dir's), the addresses as bytes. It copies and
// never reorders, so the Go key stays the one definition of the order;
// TestKernelKeyIsShardKey runs the program against it.
func kernelKey(k *shard.Key) bpf.FlowKey {
	var f bpf.FlowKey
	binary.BigEndian.PutUint64(f.Lo[0:8], k.LoAddr[0])
	binary.BigEndian.PutUint64(f.Lo[8:16], k.LoAddr[1])
	binary.BigEndian.PutUint64(f.Hi[0:8], k.HiAddr[0])
	binary.BigEndian.PutUint64(f.Hi[8:16], k.HiAddr[1])
	f.LoPort, f.HiPort, f.PathLo, f.Proto, f.PathHi = k.LoPort, k.HiPort, k.PathLo, k.Proto, k.PathHi
	return f
}
