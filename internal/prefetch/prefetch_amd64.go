package prefetch

import "unsafe"

// Line prefetches the cache line holding p. It never faults: p may be nil
// or point anywhere.
//
//go:noescape
func Line(p unsafe.Pointer)

// Flow prefetches the lines of a 128-byte object at p (three when it
// straddles them).
//
//go:noescape
func Flow(p unsafe.Pointer)
