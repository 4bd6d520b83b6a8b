package s3

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"strings"

	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Sentinel errors: the messages that wrap them name the setting to fix.
var (
	ErrNoSuchBucket = errors.New("backup/s3: no such bucket")
	ErrCredentials  = errors.New("backup/s3: credentials refused")
	ErrAccessDenied = errors.New("backup/s3: access denied")
	ErrUnreachable  = errors.New("backup/s3: endpoint unreachable")
	ErrFull         = errors.New("backup/s3: the backup store is full")
	ErrRegion       = errors.New("backup/s3: wrong region")
)

// code returns the S3 error code of err ("" if it has none).
func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// status returns the HTTP status of the response that err reports (0 if
// there was none).
func status(err error) int {
	var re interface{ HTTPStatusCode() int }
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

func message(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorMessage()
	}
	return ""
}

var credentialCodes = map[string]bool{
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "ExpiredToken": true, "InvalidToken": true,
	"TokenRefreshRequired": true, "InvalidClientTokenId": true, "AuthorizationQueryParametersError": true,
	"XAdminUserNotFound": true, // versitygw's InvalidAccessKeyId
}

var fullCodes = map[string]bool{
	"InsufficientStorage": true, "EntityTooLarge": true, "QuotaExceeded": true, "XMinioStorageFull": true,
	"StorageFull": true, "XMinioAdminBucketQuotaExceeded": true,
}

var regionCodes = map[string]bool{
	"PermanentRedirect": true, "AuthorizationHeaderMalformed": true, "IllegalLocationConstraintException": true,
	"IncorrectEndpoint": true,
}

// full reports whether err says the target has no room.
func full(err error) bool {
	if fullCodes[code(err)] || status(err) == 507 {
		return true
	}
	m := strings.ToLower(message(err) + " " + err.Error())
	return strings.Contains(m, "no space left") || strings.Contains(m, "disk full") || strings.Contains(m, "quota exceeded")
}

// fail turns an S3 client error of operation op on key ("" for none) into
// one that says what to fix.
func (s *Store) fail(ctx context.Context, op, key string, err error) error {
	what := op
	if key != "" {
		what += " " + key
	}
	where := s.String()
	endpoint := s.endpoint
	if endpoint == "" {
		endpoint = "AWS S3 in region " + s.region
	}
	c := code(err)
	var noBucket *noBucketError
	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("backup/s3: %s in %s: %w", what, where, ctx.Err())
	case c == "NoSuchKey" || (op == "get" && c == "NotFound"):
		return fmt.Errorf("backup/s3: %s: no such object in %s: %w", what, where, fs.ErrNotExist)
	case c == "NoSuchBucket" || errors.As(err, &noBucket):
		return fmt.Errorf("%w %q at %s (the BUCKET of s3://BUCKET/PREFIX): create the bucket, or correct the URL, "+
			"its endpoint= (AWS_ENDPOINT_URL_S3) or its region= (AWS_REGION) (%s: %v)", ErrNoSuchBucket, s.bucket, endpoint, what, err)
	case isCredentialLookup(err):
		return fmt.Errorf("%w: no AWS credentials were found for %s: %s; %s: %v", ErrCredentials, where, credentialHelp, what, err)
	case credentialCodes[c]:
		return fmt.Errorf("%w by %s for %s (%s): %s were refused; %s; %s: %v", ErrCredentials, endpoint, where, c,
			s.credentialSource(ctx), credentialHelp, what, err)
	case c == "AccessDenied" || c == "AllAccessDisabled" || c == "AccountProblem":
		return fmt.Errorf("%w to %s (%s): %s lack permission (s3:GetObject, PutObject, DeleteObject, ListBucket on the bucket) "+
			"or are not the right ones: %s; %s: %v", ErrAccessDenied, where, c, s.credentialSource(ctx), credentialHelp, what, err)
	case regionCodes[c]:
		return fmt.Errorf("%w for bucket %q (%s, the client signs for region %s): set region= in the URL or AWS_REGION "+
			"to the bucket's region; %s: %v", ErrRegion, s.bucket, c, s.region, what, err)
	case full(err):
		return fmt.Errorf("%w (%s) at %s: free space or raise the bucket's quota, then push again "+
			"(the backup was not made; the chunks already stored are reused); %s: %v", ErrFull, where, endpoint, what, err)
	case unreachable(err):
		return fmt.Errorf("%w: cannot reach %s for %s: check endpoint= in the URL (or AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL), "+
			"that the S3 server runs and the network lets the leader reach it; %s: %v", ErrUnreachable, endpoint, where, what, err)
	}
	return fmt.Errorf("backup/s3: %s in %s: %w", what, where, err)
}

const credentialHelp = "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (with AWS_SESSION_TOKEN for temporary keys) " +
	"in the environment of `keel serve` on every data node, or keys in ~/.aws/credentials for the profile " +
	"(AWS_PROFILE, or profile= in the URL), or give the machine an instance role"

// isCredentialLookup reports whether err says no credentials were found.
func isCredentialLookup(err error) bool {
	m := err.Error()
	return strings.Contains(m, "get credentials") || strings.Contains(m, "failed to retrieve credentials") ||
		strings.Contains(m, "failed to refresh cached credentials")
}

// credentialSource says which credentials the client used.
func (s *Store) credentialSource(ctx context.Context) string {
	p := s.client.Options().Credentials
	if p == nil {
		return "no credentials were found"
	}
	cr, err := p.Retrieve(ctx)
	if err != nil {
		return "no credentials were found (" + err.Error() + ")"
	}
	id := cr.AccessKeyID
	if len(id) > 8 {
		id = id[:4] + "…" + id[len(id)-4:]
	}
	return fmt.Sprintf("the credentials of access key %s from %s", id, cr.Source)
}

// unreachable reports whether err is a failure to send the request (no
// connection, no such host, TLS).
func unreachable(err error) bool {
	var se *smithyhttp.RequestSendError
	var oe *net.OpError
	var de *net.DNSError
	return errors.As(err, &se) || errors.As(err, &oe) || errors.As(err, &de)
}
