package integration

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"github.com/eddy-cdc/eddy/internal/testdb"
	"github.com/go-mysql-org/go-mysql/client"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const (
	postgresDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
	mariaAddr   = "127.0.0.1:3306"
)

// requireService skips when nothing listens at addr: the only reason a test
// here may skip. CI runs scripts/test-services.sh first, so it never does.
func requireService(t testing.TB, name, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Skipf("%s is not running at %s (run scripts/test-services.sh): %v", name, addr, err)
	}
	c.Close()
}

// The later change-capture tests need logical replication: check what
// scripts/test-services.sh promises, over a real connection.
func TestPostgresReadyForLogicalReplication(t *testing.T) {
	requireService(t, "PostgreSQL", "127.0.0.1:5432")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, postgresDSN)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	defer conn.Close(ctx)
	var wal string
	var slots, senders int
	if err := conn.QueryRow(ctx, "select current_setting('wal_level'), current_setting('max_replication_slots')::int, current_setting('max_wal_senders')::int").Scan(&wal, &slots, &senders); err != nil {
		t.Fatal(err)
	}
	if wal != "logical" || slots < 20 || senders < 20 {
		t.Fatalf("wal_level=%s max_replication_slots=%d max_wal_senders=%d; want logical, >=20, >=20", wal, slots, senders)
	}
	// A replication connection from 127.0.0.1 is allowed.
	rc, err := pgconn.Connect(ctx, postgresDSN+"&replication=database")
	if err != nil {
		t.Fatalf("replication connection: %v", err)
	}
	defer rc.Close(ctx)
	res := rc.Exec(ctx, "IDENTIFY_SYSTEM")
	if _, err := res.ReadAll(); err != nil {
		t.Fatalf("IDENTIFY_SYSTEM: %v", err)
	}
}

func TestMariaDBReadyForRowBinlogs(t *testing.T) {
	requireService(t, "MariaDB", mariaAddr)
	conn, err := client.Connect(mariaAddr, "root", "", "")
	if err != nil {
		t.Fatalf("connect as root with an empty password: %v", err)
	}
	defer conn.Close()
	res, err := conn.Execute("select @@log_bin, @@binlog_format, @@binlog_row_image, @@server_id, @@gtid_strict_mode, @@gtid_current_pos")
	if err != nil {
		t.Fatal(err)
	}
	logBin, _ := res.GetInt(0, 0)
	format, _ := res.GetString(0, 1)
	image, _ := res.GetString(0, 2)
	serverID, _ := res.GetInt(0, 3)
	strict, _ := res.GetInt(0, 4)
	if logBin != 1 || format != "ROW" || image != "FULL" || serverID == 0 || strict != 1 {
		t.Fatalf("log_bin=%d binlog_format=%s binlog_row_image=%s server_id=%d gtid_strict_mode=%d", logBin, format, image, serverID, strict)
	}
}

// What the S3 sink relies on from the local versitygw, through the
// ordinary SDK: signatures checked, conditional writes (If-None-Match: *
// refused with 412 on an existing key), multipart uploads.
func TestS3ServerForTheSink(t *testing.T) {
	ctx := context.Background()
	bucket := testdb.S3Bucket(t, "eddy-services")
	c := testdb.S3Client(t, testdb.S3SecretKey)
	put := func(key, body string, ifNoneMatch bool) error {
		in := &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader(body)}
		if ifNoneMatch {
			in.IfNoneMatch = aws.String("*")
		}
		_, err := c.PutObject(ctx, in)
		return err
	}
	if err := put("a/first.txt", "one", true); err != nil {
		t.Fatalf("conditional put of a new key: %v", err)
	}
	var re *smithyhttp.ResponseError
	if err := put("a/first.txt", "two", true); !errors.As(err, &re) || re.HTTPStatusCode() != 412 {
		t.Fatalf("conditional put over an existing key: %v, want 412", err)
	}
	if _, err := testdb.S3Client(t, "not-the-secret").PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("x"), Body: strings.NewReader("x")}); !errors.As(err, &re) || re.HTTPStatusCode() != 403 {
		t.Fatalf("a put signed with the wrong secret: %v, want 403", err)
	}
	// Multipart: two parts (5 MiB is the smallest but the last), completed.
	up, err := c.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("a/big.bin")})
	if err != nil {
		t.Fatal(err)
	}
	parts := []string{strings.Repeat("p", 5<<20), "tail"}
	var done []types.CompletedPart
	for i, body := range parts {
		n := int32(i + 1)
		out, err := c.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String("a/big.bin"), UploadId: up.UploadId, PartNumber: aws.Int32(n), Body: strings.NewReader(body)})
		if err != nil {
			t.Fatalf("part %d: %v", n, err)
		}
		done = append(done, types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(n)})
	}
	if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String(bucket), Key: aws.String("a/big.bin"), UploadId: up.UploadId,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: done}}); err != nil {
		t.Fatalf("complete: %v", err)
	}
	got, err := c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("a/big.bin")})
	if err != nil {
		t.Fatal(err)
	}
	defer got.Body.Close()
	b, _ := io.ReadAll(got.Body)
	if string(b) != parts[0]+parts[1] {
		t.Fatalf("multipart object: %d bytes, want %d", len(b), len(parts[0])+len(parts[1]))
	}
}
