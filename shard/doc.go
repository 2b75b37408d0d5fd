// Package shard is the per-worker flow table: fixed capacity, symmetric keys,
// 128-byte entries, idle timeouts and bounded eviction that never blocks.
//
// One worker owns one Table; nothing in it is safe for concurrent use and
// nothing in it needs to be, which is what keeps the per-packet path free of
// locks. The table never allocates after New.
package shard
