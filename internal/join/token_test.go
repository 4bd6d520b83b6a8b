package join

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestTokenRoundTripAndCheck(t *testing.T) {
	fp := strings.Repeat("ab", 32)
	now := time.Now()
	tok, rec, err := New(PurposeNode, time.Hour, fp, "n", now)
	if err != nil {
		t.Fatal(err)
	}
	s := tok.String()
	if !strings.HasPrefix(s, "keel-join.") || strings.Contains(rec.SecretHash, tok.Secret) {
		t.Fatalf("token %s record %+v", s, rec)
	}
	back, err := Parse(" " + s + "\n")
	if err != nil || back != tok {
		t.Fatalf("parse: %v %+v", err, back)
	}
	if err := rec.Check(tok.Secret, PurposeNode, now); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"wrong secret":  rec.Check(strings.Repeat("0", 32), PurposeNode, now),
		"wrong purpose": rec.Check(tok.Secret, PurposeClient, now),
		"expired":       rec.Check(tok.Secret, PurposeNode, now.Add(2*time.Hour)),
	} {
		if !errors.Is(err, ErrTokenRefused) {
			t.Errorf("%s: %v", name, err)
		}
	}
	for _, bad := range []string{"", "keel-join.x.y.z", "keel-join." + tok.ID + "." + tok.Secret, "other." + tok.ID + "." + tok.Secret + "." + fp,
		"keel-join." + tok.ID + ".SECRET." + fp} {
		if _, err := Parse(bad); !errors.Is(err, ErrBadToken) {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
	if _, _, err := New("admin", time.Hour, fp, "", now); err == nil {
		t.Error("unknown purpose accepted")
	}
	if _, _, err := New(PurposeNode, 0, fp, "", now); err == nil {
		t.Error("zero lifetime accepted")
	}
}
