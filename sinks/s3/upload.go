package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/eddy-cdc/eddy/connect"
)

// The object metadata each file carries; eddy-sha256 is how a replay
// tells its own object (written before a crash) from another's.
const (
	metaSHA256  = "eddy-sha256"
	metaRecords = "eddy-records"
	metaFirst   = "eddy-first-offset"
	metaLast    = "eddy-last-offset"
)

// uploader puts finished files in the bucket, each at most once: the
// request is conditional (If-None-Match: *), and an object already at the
// key is accepted only when it holds the same bytes.
type uploader struct {
	client   *s3.Client
	bucket   string
	partSize int64
	slots    chan struct{} // requests in flight, over all files
	ctype    string
	log      *slog.Logger
}

// upload stores the files, several at once, and returns the errors of
// those that failed.
func (u *uploader) upload(ctx context.Context, files []*file) error {
	var wg sync.WaitGroup
	errs := make([]error, len(files))
	for i, f := range files {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = u.put(ctx, f)
			if errs[i] == nil {
				f.stored = true
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (u *uploader) acquire(ctx context.Context) error {
	select {
	case u.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (u *uploader) release() { <-u.slots }

func (u *uploader) meta(f *file) map[string]string {
	return map[string]string{
		metaSHA256:  f.sp.Sum(),
		metaRecords: strconv.FormatInt(f.records, 10),
		metaFirst:   strconv.FormatInt(f.first, 10),
		metaLast:    strconv.FormatInt(f.last, 10),
	}
}

// put stores one file: in one request, or in parts when it is larger
// than a part.
func (u *uploader) put(ctx context.Context, f *file) error {
	size := f.sp.Size()
	if size > u.partSize {
		return u.multipart(ctx, f)
	}
	if err := u.acquire(ctx); err != nil {
		return err
	}
	_, err := u.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: &u.bucket, Key: &f.key, Body: io.NewSectionReader(f.sp, 0, size), ContentLength: aws.Int64(size),
		ContentType: &u.ctype, Metadata: u.meta(f), IfNoneMatch: aws.String("*"),
		// The store checks the body against the hash taken as the file was
		// written, so the SDK need not read it again to sign it.
		ChecksumSHA256: aws.String(f.sp.Checksum()),
	}, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	u.release()
	if preconditionFailed(err) {
		return u.same(ctx, f)
	}
	if err != nil {
		return fmt.Errorf("s3 sink: put s3://%s/%s: %w", u.bucket, f.key, err)
	}
	return nil
}

// multipart stores a large file in parts of partSize, several at once,
// then completes it conditionally. Uploads of the key left by an earlier
// attempt (a crash) are aborted first: the file is written again whole.
func (u *uploader) multipart(ctx context.Context, f *file) error {
	u.abortStale(ctx, f.key)
	created, err := u.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket: &u.bucket, Key: &f.key, ContentType: &u.ctype, Metadata: u.meta(f),
	})
	if err != nil {
		return fmt.Errorf("s3 sink: start the upload of s3://%s/%s: %w", u.bucket, f.key, err)
	}
	id := created.UploadId
	abort := func() {
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		u.client.AbortMultipartUpload(actx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &f.key, UploadId: id})
	}
	size := f.sp.Size()
	n := int((size + u.partSize - 1) / u.partSize)
	parts := make([]types.CompletedPart, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		if err := u.acquire(ctx); err != nil {
			errs[i] = err
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer u.release()
			off := int64(i) * u.partSize
			length := min(u.partSize, size-off)
			num := int32(i + 1)
			out, err := u.client.UploadPart(ctx, &s3.UploadPartInput{
				Bucket: &u.bucket, Key: &f.key, UploadId: id, PartNumber: &num,
				Body: io.NewSectionReader(f.sp, off, length), ContentLength: aws.Int64(length),
			})
			if err != nil {
				errs[i] = fmt.Errorf("part %d: %w", num, err)
				return
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: &num}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		abort()
		return fmt.Errorf("s3 sink: upload s3://%s/%s: %w", u.bucket, f.key, err)
	}
	sort.Slice(parts, func(i, j int) bool { return *parts[i].PartNumber < *parts[j].PartNumber })
	_, err = u.client.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{
		Bucket: &u.bucket, Key: &f.key, UploadId: id, IfNoneMatch: aws.String("*"),
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	})
	if preconditionFailed(err) {
		abort()
		return u.same(ctx, f)
	}
	if err != nil {
		abort()
		return fmt.Errorf("s3 sink: complete s3://%s/%s: %w", u.bucket, f.key, err)
	}
	return nil
}

// abortStale aborts the unfinished uploads of key (best effort: a bucket
// lifecycle rule cleans up what this misses).
func (u *uploader) abortStale(ctx context.Context, key string) {
	out, err := u.client.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: &u.bucket, Prefix: &key})
	if err != nil {
		return
	}
	for _, up := range out.Uploads {
		if aws.ToString(up.Key) == key {
			u.client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: &u.bucket, Key: &key, UploadId: up.UploadId})
		}
	}
}

// same is called when an object is already at the file's key: a replay
// of what was stored before a crash, if its bytes are this file's. Any
// other object there is never replaced: the task stops, saying why.
func (u *uploader) same(ctx context.Context, f *file) error {
	head, err := u.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &u.bucket, Key: &f.key})
	if err != nil {
		return fmt.Errorf("s3 sink: read the object already at s3://%s/%s: %w", u.bucket, f.key, err)
	}
	got := head.Metadata[metaSHA256]
	if got == f.sp.Sum() {
		return nil
	}
	if head.Metadata[metaFirst] == strconv.FormatInt(f.first, 10) && head.Metadata[metaLast] == strconv.FormatInt(f.last, 10) &&
		head.Metadata[metaRecords] == strconv.FormatInt(f.records, 10) {
		// The same records in other bytes: a sink of another version
		// (another encoder) stored them before a restart. Kept.
		u.log.Warn("s3 sink: an object holds this file's records in other bytes (written by another version); kept",
			"key", f.key, "records", f.records)
		return nil
	}
	return connect.Permanent(fmt.Errorf("s3 sink: s3://%s/%s already holds other contents (sha256 %q, this file's %s): "+
		"another writer uses this prefix, or the topic was recreated; give the sink a prefix of its own", u.bucket, f.key, got, f.sp.Sum()))
}

func preconditionFailed(err error) bool {
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == 412
}
