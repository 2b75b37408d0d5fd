// Package classifier holds swarmguard's recognizers, flow features and the
// scoring model.
//
// Recognizers are bounded, allocation-free functions over byte-slice views of
// the first payload packets of a flow; each returns small values (evidence
// bits, counts), never errors. Inspect runs them in protocol position on a
// flow of the shard; Score turns the flow's evidence, its streaming
// statistics and its hosts' context into a probability with reasons. The
// package has no I/O, no goroutines and no clock of its own.
package classifier
