package shard

import (
	"testing"

	"github.com/swarmguard/swarmguard/shard/packet"
)

// Per-stage costs of the decided-flow path, over the corpus in memory.

func BenchmarkStageDecode(b *testing.B) { benchDecode(b, loadFrames(b)) }

// BenchmarkStageDecodeHot decodes 256 frames over and over, all in L1/L2:
// the difference to BenchmarkStageDecode is what the frame headers' trip
// from L3 or memory costs (live, DDIO delivers them to L3: it is paid there too).
func BenchmarkStageDecodeHot(b *testing.B) {
	frames := loadFrames(b)
	benchDecode(b, frames[len(frames)/2:len(frames)/2+256])
}

func benchDecode(b *testing.B, frames []frame) {
	var m packet.Meta
	b.ReportAllocs()
	b.ResetTimer()
	for i, j := 0, 0; i < b.N; i, j = i+1, j+1 {
		if j == len(frames) {
			j = 0
		}
		packet.Decode(frames[j].link, frames[j].data, &m)
	}
}

func BenchmarkStageKeyHash(b *testing.B) {
	frames := loadFrames(b)
	metas := make([]packet.Meta, len(frames))
	for i := range frames {
		packet.Decode(frames[i].link, frames[i].data, &metas[i])
	}
	var sink uint64
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		k, _ := makeKey(&metas[i%len(metas)])
		sink += k.Hash()
	}
	_ = sink
}

func BenchmarkStageLookup(b *testing.B) {
	frames := loadFrames(b)
	var keys []Key
	for i := range frames {
		var m packet.Meta
		if packet.Decode(frames[i].link, frames[i].data, &m) == packet.OK {
			k, _ := makeKey(&m)
			keys = append(keys, k)
		}
	}
	hashes := make([]uint64, len(keys))
	for i := range keys {
		hashes[i] = keys[i].Hash()
	}
	t := NewTable(TableConfig{Capacity: 1 << 16})
	for i := range keys {
		t.Lookup(&keys[i], hashes[i], 0)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		j := i % len(keys)
		f, _ := t.Lookup(&keys[j], hashes[j], 1)
		f.Account(0, 100, 0x10, 1)
	}
}
