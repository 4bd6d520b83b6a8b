// Package testkit holds what the tests that drive real keel processes share
// (test/e2e and test/chaos): building the keel binary, handing out free
// loopback ports without collisions, running `keel init` for a cluster
// shape, supervising one process with its log, and a fault-injecting TCP
// proxy that partitions, blackholes or resets a link. It is imported by
// tests only.
package testkit
