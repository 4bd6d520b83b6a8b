package e2e

// The fault-injecting TCP proxy lives in internal/testkit (test/chaos uses
// it too); these names keep the e2e tests short.

import (
	"testing"

	"keel/internal/testkit"
)

type (
	faultMode  = testkit.Mode
	faultProxy = testkit.FaultProxy
)

const (
	modePass      = testkit.Pass
	modeBlackhole = testkit.Blackhole
	modeReset     = testkit.Reset
)

// newFaultProxy listens on a free 127.0.0.1 port and forwards to target.
func newFaultProxy(t *testing.T, target string) *faultProxy { return testkit.NewFaultProxy(t, target) }
