package join

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"keel/internal/tlsutil"
)

// errorBody mirrors cluster.ErrorBody (kept apart so that join needs no
// cluster client).
type errorBody struct {
	Error       string `json:"error"`
	LeaderID    string `json:"leader_id,omitempty"`
	LeaderAdmin string `json:"leader_admin,omitempty"`
}

// Do sends req to the node at addr (host:port of its admin API), checking
// the server against the token's CA fingerprint, and follows the answer of
// a node that is not the leader to the leader. It retries while the cluster
// has no leader, until ctx ends.
func Do(ctx context.Context, addr string, tok Token, req Request) (*Response, error) {
	var ca *x509.Certificate
	tr := &http.Transport{TLSClientConfig: tlsutil.PinnedConfig(tok.CAFingerprint, &ca), TLSHandshakeTimeout: 5 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	req.TokenID, req.TokenSecret = tok.ID, tok.Secret
	body, _ := json.Marshal(req)
	target := addr
	var lastErr error
	for attempt := 0; ; attempt++ {
		hr, err := http.NewRequestWithContext(ctx, http.MethodPost, "https://"+target+Path, bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("join: %w", err)
		}
		hr.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(hr)
		if err == nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				var out Response
				if err := json.Unmarshal(b, &out); err != nil {
					return nil, fmt.Errorf("join: decode answer of %s: %w", target, err)
				}
				return &out, nil
			}
			var eb errorBody
			_ = json.Unmarshal(b, &eb)
			switch resp.StatusCode {
			case http.StatusMisdirectedRequest:
				if eb.LeaderAdmin != "" {
					target = eb.LeaderAdmin
					continue
				}
				lastErr = fmt.Errorf("join: %s is not the leader and named none: %s", target, eb.Error)
			case http.StatusServiceUnavailable:
				lastErr = fmt.Errorf("join: %s: %s", target, eb.Error)
				target = addr
			default:
				return nil, fmt.Errorf("join: %s refused: %s", target, eb.Error)
			}
		} else {
			lastErr = fmt.Errorf("join: %s: %w", target, err)
			target = addr
			if isPinError(err) {
				return nil, lastErr
			}
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up: %v)", lastErr, ctx.Err())
		case <-time.After(min(time.Duration(attempt+1)*200*time.Millisecond, 2*time.Second)):
		}
	}
}

func isPinError(err error) bool {
	return err != nil && bytes.Contains([]byte(err.Error()), []byte(tlsutil.ErrUntrusted.Error()))
}
