package fsstate

import (
	"fmt"
	"strings"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
)

// MaxClusterName is the longest cluster record name.
const MaxClusterName = 255

// Cluster records are small named values the cluster keeps about itself
// (members, join tokens) rather than about files. They live in the same
// state as the files, so they are replicated, snapshotted and restored with
// it, and any leader reads the same ones. Volume clones and reverts do not
// touch them.

func clusterKey(name string) []byte { return append([]byte{pClust}, name...) }

// opClusterSet sets record c.Name to c.Data; empty Data deletes it.
func opClusterSet(t *txn, c *Command) (Result, error) {
	if c.Name == "" || len(c.Name) > MaxClusterName || strings.ContainsRune(c.Name, 0) {
		return Result{Err: syscall.EINVAL}, nil
	}
	if len(c.Data) == 0 {
		t.del(clusterKey(c.Name))
	} else {
		t.set(clusterKey(c.Name), append([]byte(nil), c.Data...))
	}
	return Result{}, nil
}

// ClusterRecord is one cluster record.
type ClusterRecord struct {
	Name  string
	Value []byte
}

// ClusterRecords returns the cluster records whose names start with prefix,
// by name.
func (s *Store) ClusterRecords(prefix string) (recs []ClusterRecord, err error) {
	err = s.view(func(r reader) error {
		recs = nil
		start := clusterKey(prefix)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: prefixEnd(start)})
		if err != nil {
			return fmt.Errorf("fsstate: cluster records: %w", err)
		}
		defer it.Close()
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				return fmt.Errorf("fsstate: cluster records: %w", err)
			}
			recs = append(recs, ClusterRecord{Name: string(it.Key()[1:]), Value: append([]byte(nil), v...)})
		}
		return it.Error()
	})
	return recs, err
}
