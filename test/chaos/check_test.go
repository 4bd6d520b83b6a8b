package chaos

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func TestRegistersLinearizable(t *testing.T) {
	ok := []RegOp{
		{Client: 0, Key: "a", Kind: Write, Value: "1", Call: at(0), Return: at(10)},
		{Client: 1, Key: "a", Kind: Read, Value: "1", Call: at(20), Return: at(30)},
		{Client: 1, Key: "b", Kind: Read, Value: "init", Call: at(20), Return: at(30)},
		// Concurrent with the read: either order.
		{Client: 0, Key: "a", Kind: Write, Value: "2", Call: at(40), Return: at(60)},
		{Client: 1, Key: "a", Kind: Read, Value: "1", Call: at(45), Return: at(50)},
		// Unknown outcome: may take effect late…
		{Client: 2, Key: "b", Kind: Write, Value: "x", Call: at(70), Unknown: true},
		{Client: 1, Key: "b", Kind: Read, Value: "init", Call: at(80), Return: at(90)},
		{Client: 1, Key: "b", Kind: Read, Value: "x", Call: at(100), Return: at(110)},
	}
	if res, desc := CheckRegisters(ok, "init", 10*time.Second); res != porcupine.Ok {
		t.Fatalf("a linearizable history: %v\n%s", res, desc)
	}
	cases := map[string][]RegOp{
		"stale read": {
			{Client: 0, Key: "a", Kind: Write, Value: "1", Call: at(0), Return: at(10)},
			{Client: 1, Key: "a", Kind: Read, Value: "init", Call: at(20), Return: at(30)},
		},
		"value nobody wrote": {
			{Client: 1, Key: "a", Kind: Read, Value: "ghost", Call: at(20), Return: at(30)},
		},
		"lost write read back as older": {
			{Client: 0, Key: "a", Kind: Write, Value: "1", Call: at(0), Return: at(10)},
			{Client: 0, Key: "a", Kind: Write, Value: "2", Call: at(20), Return: at(30)},
			{Client: 1, Key: "a", Kind: Read, Value: "2", Call: at(40), Return: at(50)},
			{Client: 1, Key: "a", Kind: Read, Value: "1", Call: at(60), Return: at(70)},
		},
	}
	for name, h := range cases {
		if res, _ := CheckRegisters(h, "init", 10*time.Second); res != porcupine.Illegal {
			t.Errorf("%s: verdict %v, want Illegal", name, res)
		}
	}
}

func TestCheckCreated(t *testing.T) {
	tried := map[string]Created{"a": {Sum: "A", Acked: true}, "b": {Sum: "B"}, "c": {Sum: "C"}}
	if bad := CheckCreated(tried, map[string]string{"a": "A", "b": "E"}, "E"); len(bad) != 0 {
		t.Fatalf("a consistent end state: %v", bad)
	}
	bad := CheckCreated(tried, map[string]string{"b": "X", "z": "Z"}, "E")
	want := []string{"acknowledged file a is missing", "file b has content", "file z exists, but no client created it"}
	if len(bad) != len(want) {
		t.Fatalf("anomalies %q, want %d", bad, len(want))
	}
	for i, w := range want {
		if !strings.HasPrefix(bad[i], w) {
			t.Errorf("anomaly %d: %q, want it to start with %q", i, bad[i], w)
		}
	}
}

func TestServingIntervals(t *testing.T) {
	evs := []Event{
		{"n1", at(0), Active, time.Time{}},
		{"n1", at(100), Paused, time.Time{}}, // paused: serves nothing
		{"n2", at(900), Active, time.Time{}},
		{"n1", at(2000), Resumed, time.Time{}}, // still believes it is active…
		{"n1", at(2030), Inactive, time.Time{}},
		{"n2", at(3000), Killed, time.Time{}},
		{"n3", at(4000), Active, time.Time{}},
	}
	ivs := ServingIntervals(evs, at(5000))
	if len(ivs) != 4 {
		t.Fatalf("intervals %v, want 4", ivs)
	}
	bad := Overlaps(ivs)
	if len(bad) != 1 || !strings.Contains(bad[0], "n1 and n2") && !strings.Contains(bad[0], "n2 and n1") {
		t.Fatalf("overlaps %q, want the 30ms of n1 after its resumption against n2", bad)
	}
	if bad := Overlaps(ServingIntervals(evs[:3], at(5000))); len(bad) != 0 {
		t.Fatalf("a paused leader and its successor: overlaps %q, want none", bad)
	}
	// The same, but n1 noticed the freeze and says it was not active since
	// its last tick before it (at 90 ms): no overlap.
	thawed := append([]Event(nil), evs...)
	thawed[4].AsOf = at(90)
	if bad := Overlaps(ServingIntervals(thawed, at(5000))); len(bad) != 0 {
		t.Fatalf("a leader that noticed its freeze: overlaps %q, want none", bad)
	}
	// A node that says it stopped at 1500 ms but was never paused: its
	// interval ends then, and overlaps n2 from 900 ms.
	starved := []Event{{"n1", at(0), Active, time.Time{}}, {"n2", at(900), Active, time.Time{}}, {"n1", at(2000), Inactive, at(1500)}}
	if bad := Overlaps(ServingIntervals(starved, at(5000))); len(bad) != 1 || !strings.Contains(bad[0], "600ms") {
		t.Fatalf("overlaps %q, want 600ms of n1 and n2", bad)
	}
}

func TestActiveEvents(t *testing.T) {
	p := filepath.Join(t.TempDir(), "keel.log")
	log := `=== testkit start
{"time":"2026-01-01T00:00:01Z","level":"INFO","msg":"this node is now active","component":"node"}
{"time":"2026-01-01T00:00:02Z","level":"INFO","msg":"something else active"}
{"time":"2026-01-01T00:00:03Z","level":"INFO","msg":"this node is no longer active; dropping NFS connections"}
{"time":"2026-01-01T00:00:05Z","level":"INFO","msg":"this node is no longer active: it was frozen longer than the leader lease; dropping NFS connections","frozen_for":"1s","last_active_at":"2026-01-01T00:00:04Z"}
`
	if err := os.WriteFile(p, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	evs, err := ActiveEvents("n1", p)
	if err != nil || len(evs) != 3 || evs[0].Kind != Active || evs[1].Kind != Inactive || evs[1].At.Sub(evs[0].At) != 2*time.Second ||
		evs[2].Kind != Inactive || evs[2].AsOf.Sub(evs[0].At) != 3*time.Second {
		t.Fatalf("events %v, %v", evs, err)
	}
}
