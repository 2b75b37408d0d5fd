package prefetch

import (
	"testing"
	"unsafe"
)

// TestNeverFaults: a prefetch of nil or across the end of a buffer is a
// hint, not an access.
func TestNeverFaults(t *testing.T) {
	b := make([]byte, 64)
	Line(nil)
	Flow(nil)
	Line(unsafe.Pointer(&b[63]))
	Flow(unsafe.Pointer(&b[0]))

}
