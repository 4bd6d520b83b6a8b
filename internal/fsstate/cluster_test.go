package fsstate

import (
	"syscall"
	"testing"
)

func TestClusterRecords(t *testing.T) {
	h := newHarness(t)
	h.ok(&Command{Op: OpClusterSet, Name: "member/n1", Data: []byte(`{"id":"n1"}`)})
	h.ok(&Command{Op: OpClusterSet, Name: "member/n2", Data: []byte(`{"id":"n2"}`)})
	h.ok(&Command{Op: OpClusterSet, Name: "token/abc", Data: []byte("t")})
	recs, err := h.s.ClusterRecords("member/")
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[0].Name != "member/n1" || string(recs[1].Value) != `{"id":"n2"}` {
		t.Fatalf("records %+v", recs)
	}
	// Empty data deletes; deleting what is not there is fine.
	h.ok(&Command{Op: OpClusterSet, Name: "member/n1"})
	h.ok(&Command{Op: OpClusterSet, Name: "member/none"})
	recs, _ = h.s.ClusterRecords("member/")
	if len(recs) != 1 || recs[0].Name != "member/n2" {
		t.Fatalf("after delete %+v", recs)
	}
	// Bad names change nothing.
	h.fail(&Command{Op: OpClusterSet, Data: []byte("x")}, syscall.EINVAL)
	// Records survive reopening and are not volumes.
	if vols, _ := h.s.Volumes(); len(vols) != 0 {
		t.Fatalf("volumes %v", vols)
	}
	all, _ := h.s.ClusterRecords("")
	if len(all) != 2 {
		t.Fatalf("all records %+v", all)
	}
}
