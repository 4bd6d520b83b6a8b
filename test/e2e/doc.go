// Package e2e is keel's end-to-end test suite. It builds the keel binary
// once per `go test` run and drives real clusters on 127.0.0.1: every
// storage node is its own `keel serve` process, and the tests talk to it the
// way a user does, through the mTLS admin API (internal/cluster's client)
// and the keel CLI.
//
// The suite covers:
//
//   - failover: killing the leader (kill -9) while a client writes; every
//     acknowledged write survives and writes continue on the new leader;
//   - crash safety: killing every node at once during concurrent writes,
//     then checking every acknowledged file on every data node and the
//     per-node state digests;
//   - catch-up: a follower that missed 50 MiB of writes receives about
//     50 MiB over raft, not a copy of the volume;
//   - isolation: nodes, clients and data directories of another cluster are
//     refused;
//   - the 2 data + 1 witness shape: the witness never stays leader;
//   - the CLI: keel up / status / fs / volume, and config validation of
//     keel serve.
//
// The framework lives in framework_test.go (modelled on etcd's
// tests/framework/e2e); each test file holds a few focused tests. The suite
// uses only loopback addresses and free ports, and every wait is bounded.
package e2e
