// Package replication owns keel's raft group: hashicorp/raft with raft-wal as
// the log and stable store (behind a LogCache), a TLS stream layer that counts
// the bytes it moves, a snapshot store whose snapshots are Pebble checkpoints
// (hard links, so taking one does not copy the state), the state-machine
// wrapper that applies committed entries to internal/fsstate in batches, the
// read-index barrier that leader reads wait on, and the witness role (votes and
// keeps the log, never keeps state, hands leadership away at once).
//
// A change is acknowledged only after its entry is committed on a quorum (each
// voter fsyncs it in raft-wal before answering) and applied on the leader.
package replication
