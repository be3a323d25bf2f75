package testdb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Where scripts/test-services.sh runs versitygw (an S3 server over a local
// directory) and its root key pair.
const (
	S3Endpoint  = "http://127.0.0.1:7070"
	S3AccessKey = "eddytest"
	S3SecretKey = "eddytest-secret-key"
	S3Region    = "us-east-1"
)

// S3Client is an ordinary SDK client of the local versitygw, path-style,
// with the given secret key (S3SecretKey, or another to be refused); it
// skips the test when the server is not running.
func S3Client(t testing.TB, secret string) *s3.Client {
	t.Helper()
	if c, err := net.DialTimeout("tcp", "127.0.0.1:7070", 2*time.Second); err != nil {
		t.Skipf("versitygw is not running (run scripts/test-services.sh): %v", err)
	} else {
		c.Close()
	}
	return newS3Client(S3Endpoint, secret)
}

func newS3Client(endpoint, secret string) *s3.Client {
	return s3.New(s3.Options{
		BaseEndpoint: aws.String(endpoint),
		Region:       S3Region,
		UsePathStyle: true,
		Credentials:  credentials.NewStaticCredentialsProvider(S3AccessKey, secret, ""),
	})
}

// S3Bucket makes a bucket on the local versitygw, emptied and removed when
// the test ends, and returns its name.
func S3Bucket(t testing.TB, prefix string) string {
	t.Helper()
	c := S3Client(t, S3SecretKey)
	name := fmt.Sprintf("%s-%d", prefix, rand.IntN(1e9))
	ctx := context.Background()
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		t.Fatalf("create bucket %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx := context.Background()
		p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(name)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Errorf("list bucket %s: %v", name, err)
				return
			}
			var ids []types.ObjectIdentifier
			for _, o := range page.Contents {
				ids = append(ids, types.ObjectIdentifier{Key: o.Key})
			}
			if len(ids) > 0 {
				if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(name), Delete: &types.Delete{Objects: ids}}); err != nil {
					t.Errorf("empty bucket %s: %v", name, err)
					return
				}
			}
		}
		uploads, _ := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: aws.String(name)})
		if uploads != nil {
			for _, u := range uploads.Uploads {
				c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: aws.String(name), Key: u.Key, UploadId: u.UploadId})
			}
		}
		if _, err := c.DeleteBucket(ctx, &s3.DeleteBucketInput{Bucket: aws.String(name)}); err != nil {
			t.Errorf("delete bucket %s: %v", name, err)
		}
	})
	return name
}

// S3Object is one object of a bucket, read whole.
type S3Object struct {
	Key    string
	Body   []byte
	SHA256 string // of Body
	Meta   map[string]string
	Path   string // where S3Download wrote it
}

// S3Objects reads every object of bucket, in key order.
func S3Objects(t testing.TB, c *s3.Client, bucket string) []S3Object {
	t.Helper()
	ctx := context.Background()
	var out []S3Object
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatalf("list %s: %v", bucket, err)
		}
		for _, o := range page.Contents {
			get, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: o.Key})
			if err != nil {
				t.Fatalf("get %s: %v", *o.Key, err)
			}
			body, err := io.ReadAll(get.Body)
			get.Body.Close()
			if err != nil {
				t.Fatalf("read %s: %v", *o.Key, err)
			}
			sum := sha256.Sum256(body)
			out = append(out, S3Object{Key: *o.Key, Body: body, SHA256: hex.EncodeToString(sum[:]), Meta: get.Metadata})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// S3Download writes every object of bucket into dir (keys as paths), for
// tools that read files (DuckDB), and returns them in key order.
func S3Download(t testing.TB, c *s3.Client, bucket, dir string) []S3Object {
	t.Helper()
	objs := S3Objects(t, c, bucket)
	for i := range objs {
		path := filepath.Join(dir, filepath.FromSlash(objs[i].Key))
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, objs[i].Body, 0o644); err != nil {
			t.Fatal(err)
		}
		objs[i].Path = path
	}
	return objs
}
