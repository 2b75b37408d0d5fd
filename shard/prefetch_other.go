//go:build !amd64

package shard

import "unsafe"

// prefetchLine does nothing on this architecture.
func prefetchLine(p unsafe.Pointer) {}

// prefetchFlow does nothing on this architecture.
func prefetchFlow(p unsafe.Pointer) {}
