// Package s3store is the log's archive store on S3 or an S3-compatible
// server (aws-sdk-go-v2): one object per key below a prefix, each stored
// with its SHA-256 as x-amz-checksum-sha256, which the server checks.
package s3store

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	elog "github.com/eddy-cdc/eddy/log"
)

// Config is where the store is and how to reach it.
type Config struct {
	Bucket    string
	Prefix    string // keys go below it
	Region    string // default us-east-1
	Endpoint  string // an S3-compatible server; empty for AWS
	PathStyle bool
	// AccessKeyID and SecretAccessKey; both empty: the SDK's default
	// chain (environment, shared config, instance role).
	AccessKeyID     string
	SecretAccessKey string
}

// Store is an archive store in an S3 bucket.
type Store struct {
	client *s3.Client
	bucket string
	prefix string
}

const metaSHA256 = "eddy-sha256"

// New returns a store; it does not reach the server (a store that is
// down must not keep the log from opening).
func New(ctx context.Context, c Config) (*Store, error) {
	if c.Bucket == "" {
		return nil, errors.New("s3 store: bucket is required")
	}
	opts := []func(*awsconfig.LoadOptions) error{awsconfig.WithRegion(cmp.Or(c.Region, "us-east-1"))}
	if c.AccessKeyID != "" || c.SecretAccessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(c.AccessKeyID, c.SecretAccessKey, "")))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("s3 store: aws config: %w", err)
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
		}
		o.UsePathStyle = c.PathStyle
		// Reads are ranges, CRC-checked batch by batch by the log; a
		// range has no whole-object checksum to validate (and the SDK
		// would log so on every read).
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		o.DisableLogOutputChecksumValidationSkipped = true
		// A few quick tries; the archive job retries a failed pass on its
		// schedule, and says why meanwhile.
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.MaxBackoff = 2 * time.Second
			so.RateLimiter = ratelimit.None
		})
	})
	prefix := strings.Trim(c.Prefix, "/")
	if prefix != "" {
		prefix += "/"
	}
	return &Store{client: client, bucket: c.Bucket, prefix: prefix}, nil
}

func (s *Store) String() string { return "s3://" + s.bucket + "/" + s.prefix }

// Put stores the object in one request, with its SHA-256 for the server
// to check (and as metadata, for servers that keep no checksums).
func (s *Store) Put(ctx context.Context, key string, body io.ReaderAt, size int64, sum [sha256.Size]byte) error {
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &s.bucket, Key: aws.String(s.prefix + key), Body: io.NewSectionReader(body, 0, size), ContentLength: aws.Int64(size),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		Metadata:       map[string]string{metaSHA256: hex.EncodeToString(sum[:])},
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	if err != nil {
		return fmt.Errorf("put s3://%s/%s%s: %w", s.bucket, s.prefix, key, err)
	}
	return nil
}

// Stat reads the object's size and SHA-256 as the server keeps them.
func (s *Store) Stat(ctx context.Context, key string) (elog.ObjectStat, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key), ChecksumMode: types.ChecksumModeEnabled})
	if err != nil {
		return elog.ObjectStat{}, s.wrap("stat", key, err)
	}
	st := elog.ObjectStat{Size: aws.ToInt64(out.ContentLength), SHA256: out.Metadata[metaSHA256]}
	if c := aws.ToString(out.ChecksumSHA256); c != "" && !strings.Contains(c, "-") {
		if b, err := base64.StdEncoding.DecodeString(c); err == nil {
			st.SHA256 = hex.EncodeToString(b)
		}
	}
	return st, nil
}

// ReadAt reads a range of the object.
func (s *Store) ReadAt(ctx context.Context, key string, p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+int64(len(p))-1))})
	if err != nil {
		var re *awshttp.ResponseError
		if errors.As(err, &re) && re.HTTPStatusCode() == 416 {
			return 0, io.EOF
		}
		return 0, s.wrap("read", key, err)
	}
	defer out.Body.Close()
	n, err := io.ReadFull(out.Body, p)
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return n, io.EOF
	}
	if err != nil {
		return n, s.wrap("read", key, err)
	}
	return n, nil
}

// OpenRange streams a range of the object, in one request.
func (s *Store) OpenRange(ctx context.Context, key string, off, n int64) (io.ReadCloser, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key),
		Range: aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))})
	if err != nil {
		return nil, s.wrap("read", key, err)
	}
	return out.Body, nil
}

// Delete removes the object.
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: aws.String(s.prefix + key)}); err != nil {
		return s.wrap("delete", key, err)
	}
	return nil
}

// wrap names the operation and object; a missing one wraps
// os.ErrNotExist.
func (s *Store) wrap(op, key string, err error) error {
	var ae smithy.APIError
	if errors.As(err, &ae) && (ae.ErrorCode() == "NotFound" || ae.ErrorCode() == "NoSuchKey") {
		return fmt.Errorf("%s s3://%s/%s%s: %w (%w)", op, s.bucket, s.prefix, key, os.ErrNotExist, err)
	}
	return fmt.Errorf("%s s3://%s/%s%s: %w", op, s.bucket, s.prefix, key, err)
}

var _ elog.ArchiveStore = (*Store)(nil)
