package shard

import (
	"testing"
	"unsafe"
)

func TestFlowEntryFitsIn128Bytes(t *testing.T) {
	if s := unsafe.Sizeof(Flow{}); s > 128 {
		t.Fatalf("Flow is %d bytes, budget is 128", s)
	}
	if s := unsafe.Sizeof(Key{}); s != 40 {
		t.Fatalf("Key is %d bytes, want 40", s)
	}
}
