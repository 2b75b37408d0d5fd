// Package shard is the engine: it takes a frame from any source and runs it
// through decode (shard/packet), the per-worker flow table, the fast path
// for decided flows, the classifier and the host delta, to a verdict and a
// decision record. Engine owns the workers, the host merger and the 100 ms
// tick; Replay drives an Engine with packet time, dataplane/live with wall
// time.
//
// One worker owns one Table; nothing in it is safe for concurrent use and
// nothing in it needs to be, which is what keeps the per-packet path free of
// locks. The table never allocates after NewTable.
package shard
