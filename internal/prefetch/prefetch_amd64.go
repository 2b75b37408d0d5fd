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

// Frames prefetches the first cache line (the headers) of every frame: one
// call for a whole batch.
//
//go:noescape
func Frames(frames [][]byte)

// Lines prefetches the line at each address. Addresses are plain numbers
// (no write barrier to store them); they must point into memory the caller
// keeps alive, though a stale one only wastes the hint.
//
//go:noescape
func Lines(addrs []uintptr)
