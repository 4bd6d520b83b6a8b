package chaos

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// EventKind is something that changes whether a node can serve.
type EventKind int

// What a node logged (Active, Inactive) and what the harness did to it
// (Killed, Paused, Resumed). A started process is not serving until it
// logs Active.
const (
	Active EventKind = iota
	Inactive
	Killed
	Paused
	Resumed
)

var eventNames = [...]string{"active", "inactive", "killed", "paused", "resumed"}

func (k EventKind) String() string { return eventNames[k] }

// Event is one change of one node, at a time on the machine's clock (the
// nodes and the harness run on one machine).
type Event struct {
	Node string
	At   time.Time
	Kind EventKind
	// AsOf, on an Inactive event of a node that noticed it had been frozen,
	// is when it was last active by its own account (its last tick before
	// the freeze): it served nothing since.
	AsOf time.Time
}

// Interval is a span during which a node served: from its "now active" log
// line (or its resumption while it still believed it was active) to its
// "no longer active" line, its death or its pause, whichever came first. A
// node that noticed it had been frozen says since when it was not active
// (Event.AsOf); its interval ends then. Open intervals end at the end of the
// run.
type Interval struct {
	Node       string
	From, To   time.Time
	Start, End EventKind
}

func (iv Interval) String() string {
	return fmt.Sprintf("%s serving %s (%s) → %s (%s)", iv.Node, iv.From.Format("15:04:05.000"), iv.Start, iv.To.Format("15:04:05.000"), iv.End)
}

// ServingIntervals folds every node's events (in any order) into the
// intervals during which it served, ending open ones at end.
func ServingIntervals(events []Event, end time.Time) []Interval {
	evs := append([]Event(nil), events...)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].At.Before(evs[j].At) })
	type state struct {
		believes bool // the node thinks it is active (logged Active, not yet Inactive)
		paused   bool
		open     *Interval
	}
	st := map[string]*state{}
	var out []Interval
	closeAt := func(s *state, at time.Time, why EventKind) {
		if s.open != nil {
			s.open.To, s.open.End = at, why
			out = append(out, *s.open)
			s.open = nil
		}
	}
	for _, e := range evs {
		s := st[e.Node]
		if s == nil {
			s = &state{}
			st[e.Node] = s
		}
		switch e.Kind {
		case Active:
			s.believes = true
			if s.open == nil && !s.paused {
				s.open = &Interval{Node: e.Node, From: e.At, Start: Active}
			}
		case Inactive:
			s.believes = false
			switch {
			case !e.AsOf.IsZero() && s.open != nil && !s.open.From.Before(e.AsOf):
				// Reopened at its resumption, but the node says it was not
				// active since before: nothing to count.
				s.open = nil
			case !e.AsOf.IsZero():
				closeAt(s, minTime(e.AsOf, e.At), Inactive)
			default:
				closeAt(s, e.At, Inactive)
			}
		case Killed:
			s.believes, s.paused = false, false
			closeAt(s, e.At, Killed)
		case Paused:
			s.paused = true
			closeAt(s, e.At, Paused)
		case Resumed:
			s.paused = false
			if s.believes && s.open == nil {
				s.open = &Interval{Node: e.Node, From: e.At, Start: Resumed}
			}
		}
	}
	var nodes []string
	for n := range st {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		closeAt(st[n], end, Inactive)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].From.Before(out[j].From) })
	return out
}

// Overlaps returns every pair of intervals of different nodes that share
// a moment.
func Overlaps(ivs []Interval) []string {
	var bad []string
	for i := range ivs {
		for j := i + 1; j < len(ivs); j++ {
			a, b := ivs[i], ivs[j]
			if a.Node == b.Node {
				continue
			}
			if a.From.Before(b.To) && b.From.Before(a.To) {
				lap := minTime(a.To, b.To).Sub(maxTime(a.From, b.From))
				bad = append(bad, fmt.Sprintf("%s and %s serve at the same time for %v: [%s] and [%s]", a.Node, b.Node, lap, a, b))
			}
		}
	}
	return bad
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// Log lines of internal/node/active.go that mark the start and the end of
// a node's time as the active node.
const (
	MsgActive   = "this node is now active"
	MsgInactive = "this node is no longer active"
)

// ActiveEvents reads a node's JSON log (log.format: json) and returns its
// Active and Inactive events.
func ActiveEvents(node, path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if !strings.Contains(string(line), "active") || len(line) == 0 || line[0] != '{' {
			continue
		}
		var rec struct {
			Time time.Time `json:"time"`
			Msg  string    `json:"msg"`
			AsOf time.Time `json:"last_active_at"`
		}
		if json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch {
		case strings.HasPrefix(rec.Msg, MsgActive):
			out = append(out, Event{Node: node, At: rec.Time, Kind: Active})
		case strings.HasPrefix(rec.Msg, MsgInactive):
			out = append(out, Event{Node: node, At: rec.Time, Kind: Inactive, AsOf: rec.AsOf})
		}
	}
	return out, sc.Err()
}
