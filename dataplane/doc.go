// Package dataplane connects the engine (package shard) to the world: its
// subpackages are the packet sources and sinks (pcapsrc reads captures,
// xsk drives AF_XDP sockets, live runs the bridge or monitor and writes the
// kernel maps), and ClassifyFile replays a capture file with packet time as
// the clock.
package dataplane
