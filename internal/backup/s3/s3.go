// Package s3 keeps backup objects in an S3 bucket (an s3://bucket/prefix
// backup URL), on AWS or any S3 API server (MinIO, Ceph RGW, versitygw, …).
// It satisfies backup.Store. It owns the URL's S3 settings, the client
// (github.com/aws/aws-sdk-go-v2), and turning the server's refusals into
// errors that name the setting to fix.
//
// # URL and settings
//
//	s3://BUCKET[/PREFIX][?endpoint=URL&region=REGION&path_style=true|false&profile=NAME]
//
// Objects are stored under PREFIX/ in BUCKET. Each setting is taken from
// the first of these that has it:
//
//   - endpoint: the URL's endpoint=, then AWS_ENDPOINT_URL_S3, then
//     AWS_ENDPOINT_URL, then endpoint_url in the shared config's profile
//     (the SDK's own order), else AWS's endpoint for the region;
//   - region: the URL's region=, then AWS_REGION, AWS_DEFAULT_REGION, the
//     profile's region; else us-east-1 (what S3 API servers other than AWS
//     expect when they care at all);
//   - path_style (bucket in the path, not in the host name): the URL's
//     path_style=, else true when an endpoint is set (as MinIO, Ceph and
//     versitygw need without wildcard DNS), false on AWS;
//   - profile: the URL's profile=, then AWS_PROFILE, else "default";
//   - credentials: the SDK's default chain: AWS_ACCESS_KEY_ID,
//     AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN), then the shared files
//     ~/.aws/credentials and ~/.aws/config (the profile), web identity, then
//     the instance's role (EC2 IMDS, ECS). Credentials never go in the URL.
//
// Backups run on the leader, so these are read in the environment of the
// leader's `keel serve` process (set them on every data node).
//
// # Integrity
//
// Put reads the whole body first (keel's objects are chunks of at most
// 64 KiB and manifests), refuses it unless it is exactly the announced size,
// and sends it as one PUT, which S3 makes visible whole or not at all, with
// its Content-MD5: the server refuses a body that arrived different
// (BadDigest). SDK checksums (x-amz-checksum-*) are sent only when
// AWS_REQUEST_CHECKSUM_CALCULATION=when_supported asks for them, because
// some S3 API servers refuse them. Over that, the backup format hashes every
// chunk and manifest with SHA-256 and checks them on every read, so the
// SDK's own check of a GET's x-amz-checksum is left off (unless
// AWS_RESPONSE_CHECKSUM_VALIDATION=when_supported): an altered object is
// reported by the backup layer as corrupt, naming it, like any store's.
package s3

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"fmt"
	"io"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
)

// DefaultRegion is the region used when neither the URL nor the
// environment nor the shared config names one.
const DefaultRegion = "us-east-1"

// maxPut is the largest object one PUT may carry (S3's limit).
const maxPut = 5 << 30

// Store is a bucket (and prefix) of backup objects.
type Store struct {
	client   *awss3.Client
	bucket   string
	prefix   string // "" or ending in "/"
	endpoint string // for messages: the endpoint in use ("" for AWS's)
	region   string
	profile  string // from the URL
	// bucketOK is set once the bucket was seen to exist, so that a HEAD's
	// 404 means "no such object".
	bucketOK atomic.Bool
}

var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// settings are what an s3:// URL says.
type settings struct {
	bucket, prefix, endpoint, region, profile string
	pathStyle                                 *bool
}

func parseURL(u *url.URL) (settings, error) {
	var s settings
	if u.Scheme != "s3" {
		return s, fmt.Errorf("backup/s3: %s is not an s3:// URL", u.Redacted())
	}
	if u.User != nil {
		return s, fmt.Errorf("backup/s3: %s: credentials do not go in the URL: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "+
			"or a profile in ~/.aws/credentials, where `keel serve` runs", u.Redacted())
	}
	s.bucket = u.Host
	if !bucketPattern.MatchString(s.bucket) || strings.Contains(s.bucket, "..") {
		return s, fmt.Errorf("backup/s3: %s: bucket name %q is not valid: write s3://BUCKET/PREFIX with a bucket of 3 to 63 "+
			"lower-case letters, digits, '.' and '-'", u.Redacted(), s.bucket)
	}
	if u.Fragment != "" {
		return s, fmt.Errorf("backup/s3: %s: an s3:// URL takes no #fragment", u.Redacted())
	}
	p := strings.Trim(u.Path, "/")
	if p != "" {
		for _, c := range strings.Split(p, "/") {
			if c == "" || c == "." || c == ".." {
				return s, fmt.Errorf("backup/s3: %s: bad prefix %q (empty, '.' or '..' component)", u.Redacted(), u.Path)
			}
		}
		s.prefix = p + "/"
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return s, fmt.Errorf("backup/s3: %s: bad query: %v", u.Redacted(), err)
	}
	for k, v := range q {
		if len(v) != 1 {
			return s, fmt.Errorf("backup/s3: %s: %s= is given %d times", u.Redacted(), k, len(v))
		}
		switch val := v[0]; k {
		case "endpoint":
			e, err := url.Parse(val)
			if err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" || e.User != nil {
				return s, fmt.Errorf("backup/s3: %s: endpoint=%q: write endpoint=http://HOST:PORT or https://HOST", u.Redacted(), val)
			}
			s.endpoint = strings.TrimSuffix(val, "/")
		case "region":
			if val == "" {
				return s, fmt.Errorf("backup/s3: %s: region= is empty", u.Redacted())
			}
			s.region = val
		case "path_style":
			b, err := strconv.ParseBool(val)
			if err != nil {
				return s, fmt.Errorf("backup/s3: %s: path_style=%q: write true or false", u.Redacted(), val)
			}
			s.pathStyle = &b
		case "profile":
			s.profile = val
		default:
			return s, fmt.Errorf("backup/s3: %s: unknown setting %q; an s3:// URL takes endpoint=, region=, path_style= and profile=",
				u.Redacted(), k)
		}
	}
	return s, nil
}

// Open returns the store of an s3://bucket/prefix URL. It reads the
// environment and the shared config files but sends nothing: a wrong
// bucket, endpoint or credentials show at the first operation.
func Open(u *url.URL) (*Store, error) {
	s, err := parseURL(u)
	if err != nil {
		return nil, err
	}
	var opts []func(*config.LoadOptions) error
	if s.region != "" {
		opts = append(opts, config.WithRegion(s.region))
	}
	if s.profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(s.profile))
	}
	cfg, err := config.LoadDefaultConfig(context.Background(), opts...)
	if err != nil {
		return nil, fmt.Errorf("backup/s3: %s: load the AWS configuration (environment, ~/.aws/config, ~/.aws/credentials): %w",
			u.Redacted(), err)
	}
	if cfg.Region == "" {
		cfg.Region = DefaultRegion
	}
	// The SDK's checksums only when the environment asks (see Integrity).
	if _, set := os.LookupEnv("AWS_REQUEST_CHECKSUM_CALCULATION"); !set {
		cfg.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
	}
	if _, set := os.LookupEnv("AWS_RESPONSE_CHECKSUM_VALIDATION"); !set {
		cfg.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	}
	st := &Store{bucket: s.bucket, prefix: s.prefix, region: cfg.Region, profile: s.profile}
	st.client = awss3.NewFromConfig(cfg, func(o *awss3.Options) {
		// o.BaseEndpoint holds what the environment or profile set.
		if s.endpoint != "" {
			o.BaseEndpoint = aws.String(s.endpoint)
		}
		if o.BaseEndpoint != nil {
			st.endpoint = *o.BaseEndpoint
		}
		o.UsePathStyle = st.endpoint != ""
		if s.pathStyle != nil {
			o.UsePathStyle = *s.pathStyle
		}
	})
	return st, nil
}

// String names the store as a URL (without the settings).
func (s *Store) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + strings.TrimSuffix(s.prefix, "/")
}

// Bucket returns the store's bucket.
func (s *Store) Bucket() string { return s.bucket }

// Prefix returns the prefix of the store's keys in the bucket ("" or ending
// in "/").
func (s *Store) Prefix() string { return s.prefix }

// Endpoint returns the S3 endpoint in use, "" for AWS's.
func (s *Store) Endpoint() string { return s.endpoint }

// Client returns the S3 client the store uses.
func (s *Store) Client() *awss3.Client { return s.client }

// objectKey maps a store key to the bucket's key, refusing keys that are
// not relative slash-separated paths.
func (s *Store) objectKey(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") || strings.HasSuffix(key, "/") {
		return "", fmt.Errorf("backup/s3: bad key %q", key)
	}
	for _, c := range strings.Split(key, "/") {
		if c == "" || c == "." || c == ".." {
			return "", fmt.Errorf("backup/s3: bad key %q", key)
		}
	}
	return s.prefix + key, nil
}

// Put stores size bytes from r under key as one PUT with its Content-MD5.
// It fails, storing nothing, unless r gives exactly size bytes.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if size < 0 || size > maxPut {
		return fmt.Errorf("backup/s3: put %s: %d bytes: one object holds 0 to 5 GiB", key, size)
	}
	body, err := io.ReadAll(io.LimitReader(r, size+1))
	if err != nil {
		return fmt.Errorf("backup/s3: put %s: read the data: %w", key, err)
	}
	if int64(len(body)) != size {
		return fmt.Errorf("backup/s3: put %s: got %d bytes, expected %d: nothing stored", key, len(body), size)
	}
	sum := md5.Sum(body)
	_, err = s.client.PutObject(ctx, &awss3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(k),
		Body:          bytes.NewReader(body),
		ContentLength: aws.Int64(size),
		ContentMD5:    aws.String(base64.StdEncoding.EncodeToString(sum[:])),
	})
	if err != nil {
		return s.fail(ctx, "put", key, err)
	}
	s.bucketOK.Store(true)
	return nil
}

// Get opens the object under key; a missing one gives an error matching
// fs.ErrNotExist.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		return nil, s.fail(ctx, "get", key, err)
	}
	s.bucketOK.Store(true)
	return out.Body, nil
}

// Stat returns the size of the object under key and whether it exists.
func (s *Store) Stat(ctx context.Context, key string) (int64, bool, error) {
	k, err := s.objectKey(key)
	if err != nil {
		return 0, false, err
	}
	out, err := s.client.HeadObject(ctx, &awss3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)})
	if err != nil {
		// A HEAD's 404 has no body: it may mean no such bucket.
		if code(err) == "NotFound" || code(err) == "NoSuchKey" {
			if berr := s.checkBucket(ctx); berr != nil {
				return 0, false, berr
			}
			return 0, false, nil
		}
		return 0, false, s.fail(ctx, "stat", key, err)
	}
	s.bucketOK.Store(true)
	return aws.ToInt64(out.ContentLength), true, nil
}

// checkBucket returns nil if the bucket exists (once seen, it is taken to
// go on existing).
func (s *Store) checkBucket(ctx context.Context) error {
	if s.bucketOK.Load() {
		return nil
	}
	if _, err := s.client.HeadBucket(ctx, &awss3.HeadBucketInput{Bucket: aws.String(s.bucket)}); err != nil {
		if c := code(err); c == "NotFound" || c == "NoSuchBucket" {
			err = &noBucketError{err}
		}
		return s.fail(ctx, "check bucket", "", err)
	}
	s.bucketOK.Store(true)
	return nil
}

// noBucketError marks a HEAD's bodiless 404 known to be about the bucket.
type noBucketError struct{ error }

func (e *noBucketError) Unwrap() error { return e.error }

// List returns the keys that start with prefix, sorted; it follows the
// listing's pages (1000 keys each).
func (s *Store) List(ctx context.Context, prefix string) ([]string, error) {
	pages := awss3.NewListObjectsV2Paginator(s.client, &awss3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket), Prefix: aws.String(s.prefix + prefix)})
	var keys []string
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, s.fail(ctx, "list", prefix, err)
		}
		for _, o := range page.Contents {
			if k, ok := strings.CutPrefix(aws.ToString(o.Key), s.prefix); ok && k != "" && !strings.HasSuffix(k, "/") {
				keys = append(keys, k)
			}
		}
	}
	s.bucketOK.Store(true)
	sort.Strings(keys)
	return keys, nil
}

// Delete removes the object under key; a missing one is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	k, err := s.objectKey(key)
	if err != nil {
		return err
	}
	if _, err := s.client.DeleteObject(ctx, &awss3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(k)}); err != nil {
		if c := code(err); c == "NoSuchKey" || c == "NotFound" {
			return nil
		}
		return s.fail(ctx, "delete", key, err)
	}
	return nil
}
