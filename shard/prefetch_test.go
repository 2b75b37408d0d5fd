package shard

import (
	"testing"
	"unsafe"
)

// TestPrefetchNeverFaults: a prefetch of nil or across the end of a buffer is a
// hint, not an access.
func TestPrefetchNeverFaults(t *testing.T) {
	b := make([]byte, 64)
	prefetchLine(nil)
	prefetchFlow(nil)
	prefetchLine(unsafe.Pointer(&b[63]))
	prefetchFlow(unsafe.Pointer(&b[0]))

}
