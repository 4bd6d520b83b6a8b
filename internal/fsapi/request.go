package fsapi

import (
	"context"

	"keel/internal/fsstate"
)

type reqKey struct{}

// WithRequest marks the changes made under ctx as the NFS request id (client,
// xid, procedure, argument hash): the state machine records their result in
// the same log entry, and answers a retransmission of the same request from
// that record instead of making the change twice.
func WithRequest(ctx context.Context, id *fsstate.RequestID) context.Context {
	return context.WithValue(ctx, reqKey{}, id)
}

func requestFrom(ctx context.Context) *fsstate.RequestID {
	id, _ := ctx.Value(reqKey{}).(*fsstate.RequestID)
	return id
}
