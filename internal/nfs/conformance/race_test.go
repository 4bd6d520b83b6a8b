//go:build race

package conformance

// raceEnabled is set when the race detector (which slows the server ten
// times) is on: the largest tests scale down.
const raceEnabled = true
