package chaos

import (
	"fmt"
	"sort"
)

// Created is a file a client tried to create with unique content.
type Created struct {
	Sum   string // sha256 of the content written
	Acked bool   // CREATE and the FILE_SYNC WRITE of its content were both acknowledged
}

// CheckCreated compares the files clients tried to create with what is
// there at the end (name → sha256 of the content found; the empty content's
// sum for a file created but not yet written). Every acknowledged file must
// be there with its content; every file there must be one a client tried
// to create, with the content it wrote or none at all.
func CheckCreated(tried map[string]Created, found map[string]string, emptySum string) []string {
	var bad []string
	for name, c := range tried {
		got, ok := found[name]
		switch {
		case c.Acked && !ok:
			bad = append(bad, fmt.Sprintf("acknowledged file %s is missing", name))
		case c.Acked && got != c.Sum:
			bad = append(bad, fmt.Sprintf("acknowledged file %s has content sha256 %s, the client wrote %s", name, got, c.Sum))
		case ok && got != c.Sum && got != emptySum:
			bad = append(bad, fmt.Sprintf("file %s has content sha256 %s, which no client wrote (it wrote %s)", name, got, c.Sum))
		}
	}
	for name := range found {
		if _, ok := tried[name]; !ok {
			bad = append(bad, fmt.Sprintf("file %s exists, but no client created it", name))
		}
	}
	sort.Strings(bad)
	return bad
}
