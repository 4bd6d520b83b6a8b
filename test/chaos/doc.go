// Package chaos is keel's fault-injection suite, in the style of Jepsen and
// etcd's robustness tests. The fault runs (chaos_test.go and the files
// beside it, build tag chaos: `go test -tags chaos ./test/chaos/...`) start
// real keel processes, real `keel tunnel` processes and several concurrent
// NFS clients, inject faults on a schedule drawn from a seed, and record
// what every client saw. This file's package holds the checkers run on that
// record, which are plain code with unit tests of their own:
//
//   - linearizability of files used as registers (porcupine);
//   - no acknowledged create/write lost and nothing present that no
//     client wrote;
//   - never two nodes serving at the same time, from the nodes' own
//     "now active" / "no longer active" log lines and the harness's record
//     of kills and pauses.
package chaos
