// Package join owns keel's join tokens and the join request: how a new
// machine (a storage node, a witness or a tunnel client) that knows only a
// token obtains its certificate from a running cluster.
//
// A token reads keel-join.<id>.<secret>.<ca-sha256>. The id names its record
// in the cluster's replicated state (so any leader honours it and `keel
// token revoke` works everywhere); the secret authenticates the request (the
// cluster keeps only its SHA-256); the CA fingerprint lets the joiner check,
// before it sends the secret, that it talks to that cluster and nobody in
// between. A token is single-purpose (nodes, or tunnel clients) and expires.
package join

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// Purposes of a token.
const (
	PurposeNode   = "node"   // storage nodes and witnesses (keel join)
	PurposeClient = "client" // tunnel clients (keel tunnel join)
)

// Errors.
var (
	ErrBadToken     = errors.New("join: malformed token")
	ErrTokenRefused = errors.New("join: token refused")
)

// Prefix starts every token.
const Prefix = "keel-join"

var (
	idRe     = regexp.MustCompile(`^[a-f0-9]{8}$`)
	secretRe = regexp.MustCompile(`^[a-f0-9]{32}$`)
	fpRe     = regexp.MustCompile(`^[a-f0-9]{64}$`)
)

// Token is a parsed join token.
type Token struct {
	ID            string
	Secret        string
	CAFingerprint string
}

// String returns the token's text form.
func (t Token) String() string {
	return Prefix + "." + t.ID + "." + t.Secret + "." + t.CAFingerprint
}

// Parse reads a token's text form.
func Parse(s string) (Token, error) {
	parts := strings.Split(strings.TrimSpace(s), ".")
	if len(parts) != 4 || parts[0] != Prefix {
		return Token{}, fmt.Errorf("%w: want keel-join.<id>.<secret>.<ca-sha256>, as printed by `keel init` or `keel token create`", ErrBadToken)
	}
	t := Token{ID: parts[1], Secret: parts[2], CAFingerprint: parts[3]}
	switch {
	case !idRe.MatchString(t.ID):
		return Token{}, fmt.Errorf("%w: the id %q is not 8 hex digits: copy the whole token", ErrBadToken, t.ID)
	case !secretRe.MatchString(t.Secret):
		return Token{}, fmt.Errorf("%w: the secret is not 32 hex digits: copy the whole token", ErrBadToken)
	case !fpRe.MatchString(t.CAFingerprint):
		return Token{}, fmt.Errorf("%w: the CA fingerprint is not 64 hex digits: copy the whole token", ErrBadToken)
	}
	return t, nil
}

// Record is what the cluster keeps about a token: never the secret itself.
type Record struct {
	ID         string    `json:"id"`
	SecretHash string    `json:"secret_sha256"`
	Purpose    string    `json:"purpose"`
	Created    time.Time `json:"created"`
	Expires    time.Time `json:"expires"`
	Note       string    `json:"note,omitempty"`
}

// New makes a token for purpose, valid for ttl, for the cluster whose CA
// has fingerprint caFingerprint, and the record the cluster keeps of it.
func New(purpose string, ttl time.Duration, caFingerprint, note string, now time.Time) (Token, Record, error) {
	if purpose != PurposeNode && purpose != PurposeClient {
		return Token{}, Record{}, fmt.Errorf("join: purpose %q: use %q or %q", purpose, PurposeNode, PurposeClient)
	}
	if ttl <= 0 || ttl > 30*24*time.Hour {
		return Token{}, Record{}, fmt.Errorf("join: token lifetime %s: use a duration between 1s and 720h, e.g. 1h", ttl)
	}
	if !fpRe.MatchString(caFingerprint) {
		return Token{}, Record{}, fmt.Errorf("join: CA fingerprint %q is not a hex SHA-256", caFingerprint)
	}
	b := make([]byte, 20)
	if _, err := rand.Read(b); err != nil {
		return Token{}, Record{}, fmt.Errorf("join: random: %w", err)
	}
	t := Token{ID: hex.EncodeToString(b[:4]), Secret: hex.EncodeToString(b[4:]), CAFingerprint: caFingerprint}
	r := Record{ID: t.ID, SecretHash: hashSecret(t.Secret), Purpose: purpose, Created: now.UTC(), Expires: now.Add(ttl).UTC(), Note: note}
	return t, r, nil
}

func hashSecret(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Check says whether secret, presented for purpose at now, is accepted by r.
func (r Record) Check(secret, purpose string, now time.Time) error {
	if subtle.ConstantTimeCompare([]byte(hashSecret(secret)), []byte(r.SecretHash)) != 1 {
		return fmt.Errorf("%w: wrong secret for token %s: copy the whole token", ErrTokenRefused, r.ID)
	}
	if r.Purpose != purpose {
		what := map[string]string{PurposeNode: "`keel join`", PurposeClient: "`keel tunnel join`"}[r.Purpose]
		return fmt.Errorf("%w: token %s is for %s (%s), not for %s: make one with `keel token create --purpose %s`", ErrTokenRefused, r.ID, r.Purpose, what, purpose, purpose)
	}
	if now.After(r.Expires) {
		return fmt.Errorf("%w: token %s expired at %s: make a new one with `keel token create --purpose %s`", ErrTokenRefused, r.ID, r.Expires.Format(time.RFC3339), r.Purpose)
	}
	return nil
}
