//go:build !amd64

package prefetch

import "unsafe"

// Line does nothing on this architecture.
func Line(p unsafe.Pointer) {}

// Flow does nothing on this architecture.
func Flow(p unsafe.Pointer) {}
