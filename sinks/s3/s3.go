// Package s3 is the s3-sink plugin: records become files in an object
// store (JSON lines, Avro object container files, Parquet) that query
// engines read directly, exactly once.
//
// Exactly once rests on three things. A file's object key derives from its
// topic, partition and first offset. A file ends only where the records
// decide (a count, a size, a window of record time, never the clock), so
// a partition read again from the same offset makes the same files with
// the same bytes. And the group's offsets are committed only up to the
// first record not yet in a stored object (connect.BufferingSink). After
// a crash the records after the committed offset come again and make
// again the objects that were stored and the ones that were not; a stored
// one is met by the conditional put (If-None-Match: *) and kept, once its
// metadata shows it holds the same bytes.
//
// Per topic-partition the sink holds one generation of files at a time:
// every file begun since the partition's last flush, one per path (a
// table, an hour) and schema that cannot be written into another. The
// partition flushes, storing every file of the generation, when the
// generation reaches flush_records or flush_bytes, or a record's time
// leaves the generation's rotate_interval window; so the point where a
// partition resumes is always where a generation began.
package s3

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
	_ "time/tzdata" // time zones on machines without a zone database

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/ratelimit"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awsconfig "github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
)

// config is the sink's validated parameters.
type config struct {
	bucket, prefix, region, endpoint string
	pathStyle, createBucket          bool
	accessKey, secretKey             string
	format                           format
	flatten                          bool
	path                             *pathTemplate
	timeField                        []string
	zone                             *time.Location
	flushRecords                     int64
	flushBytes                       int64
	rotate                           time.Duration
	partBytes                        int64
	memory                           int64
	spillDir                         string
	concurrency                      int
}

// compressions lists what each format takes, the default first.
var compressions = map[string][]string{
	"parquet": {"snappy", "zstd", "none"},
	"jsonl":   {"none", "gzip", "zstd"},
	"avro":    {"none", "deflate", "zstd"},
}

// New builds the sink from validated params.
func New(p connect.Params, env connect.Env) (connect.Sink, error) {
	c := config{
		bucket: p.String("bucket"), prefix: p.String("prefix"), region: p.String("region"), endpoint: p.String("endpoint"),
		pathStyle: p.Bool("path_style"), createBucket: p.Bool("create_bucket"), accessKey: p.String("access_key_id"), secretKey: p.String("secret_access_key"),
		format: format{name: p.String("format"), compression: p.String("compression")}, flatten: p.Bool("flatten"),
		flushRecords: p.Int("flush_records"), flushBytes: p.Int("flush_bytes"), rotate: p.Duration("rotate_interval"),
		partBytes: p.Int("upload_part_bytes"), memory: p.Int("memory_bytes"), spillDir: p.String("spill_dir"),
		concurrency: int(p.Int("upload_concurrency")),
	}
	allowed := compressions[c.format.name]
	if c.format.compression == "" {
		c.format.compression = allowed[0]
	} else if !contains(allowed, c.format.compression) {
		return nil, fmt.Errorf("line %d: compression: %s files take %s, not %s", p.Line("compression"), c.format.name, strings.Join(allowed, ", "), c.format.compression)
	}
	if (c.accessKey == "") != (c.secretKey == "") {
		return nil, fmt.Errorf("line %d: access_key_id and secret_access_key go together (or neither, for the SDK's default credentials)", max(p.Line("access_key_id"), p.Line("secret_access_key")))
	}
	if strings.Contains(c.bucket, "/") {
		return nil, fmt.Errorf("line %d: bucket: %q is a bucket's name, without a path (the path goes in prefix)", p.Line("bucket"), c.bucket)
	}
	var err error
	if c.path, err = parsePath(p.String("path")); err != nil {
		return nil, fmt.Errorf("line %d: path: %w", p.Line("path"), err)
	}
	if tf := p.String("time_field"); tf != "" {
		c.timeField = strings.Split(tf, ".")
	}
	if c.zone, err = time.LoadLocation(p.String("timezone")); err != nil {
		return nil, fmt.Errorf("line %d: timezone: %w", p.Line("timezone"), err)
	}
	if c.rotate < 0 {
		return nil, fmt.Errorf("line %d: rotate_interval: %s is negative", p.Line("rotate_interval"), c.rotate)
	}
	if c.flushRecords == 0 && c.flushBytes == 0 && c.rotate == 0 {
		return nil, fmt.Errorf("line %d: flush_records, flush_bytes and rotate_interval are all 0: files would never end", p.Line("flush_records"))
	}
	if c.flushBytes == 0 {
		c.flushBytes = 1 << 62
	}
	logger := env.Logger
	if logger == nil {
		logger = slog.Default()
	}
	return &Sink{cfg: c, log: logger, parts: map[elog.TopicPartition]*partition{}, shapes: map[avro.Schema]*shape{},
		mem: &budget{most: c.memory}}, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Sink writes records to files in a bucket.
type Sink struct {
	cfg    config
	log    *slog.Logger
	up     *uploader
	parts  map[elog.TopicPartition]*partition
	shapes map[avro.Schema]*shape
	mem    *budget
	held   int64 // bytes of closed files not yet stored
	key    []byte
}

// partition is what the sink holds of one topic-partition.
type partition struct {
	tp      elog.TopicPartition
	next    int64 // the next offset to take; -1 until the first
	gen     *generation
	pending []*generation // flushed, in order, not yet all stored
}

// generation is the files of a partition since its last flush.
type generation struct {
	first   int64 // the first offset taken into it
	records int64
	bytes   int64
	window  int64
	files   []*file
}

// file is one object being written.
type file struct {
	key, path   string
	sh          *shape // nil: values without a schema (jsonl)
	first, last int64
	records     int64
	sp          *spool
	w           fileWriter
	stored      bool
}

// Open makes the S3 client and checks that the bucket answers.
func (s *Sink) Open(ctx context.Context) error {
	var opts []func(*awsconfig.LoadOptions) error
	opts = append(opts, awsconfig.WithRegion(s.cfg.region))
	if s.cfg.accessKey != "" {
		opts = append(opts, awsconfig.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(s.cfg.accessKey, s.cfg.secretKey, "")))
	}
	ac, err := awsconfig.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return fmt.Errorf("s3 sink: aws config: %w", err)
	}
	client := s3.NewFromConfig(ac, func(o *s3.Options) {
		if s.cfg.endpoint != "" {
			o.BaseEndpoint = aws.String(s.cfg.endpoint)
		}
		o.UsePathStyle = s.cfg.pathStyle
		// A few quick tries of each request, then the error goes to the
		// runtime, which retries the write with its own backoff and shows
		// why in the task's status (no retry quota hides the store's own
		// answer).
		o.Retryer = retry.NewStandard(func(so *retry.StandardOptions) {
			so.MaxAttempts = 3
			so.MaxBackoff = 2 * time.Second
			so.RateLimiter = ratelimit.None
		})
	})
	if _, err := client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.cfg.bucket}); err != nil {
		var nf interface{ ErrorCode() string }
		if !errors.As(err, &nf) || (nf.ErrorCode() != "NotFound" && nf.ErrorCode() != "NoSuchBucket") {
			return fmt.Errorf("s3 sink: bucket %s: %w", s.cfg.bucket, err)
		}
		if !s.cfg.createBucket {
			return connect.Permanent(fmt.Errorf("s3 sink: bucket %s does not exist (create it, or set create_bucket): %w", s.cfg.bucket, err))
		}
		in := &s3.CreateBucketInput{Bucket: &s.cfg.bucket}
		if s.cfg.region != "us-east-1" {
			in.CreateBucketConfiguration = &types.CreateBucketConfiguration{LocationConstraint: types.BucketLocationConstraint(s.cfg.region)}
		}
		if _, err := client.CreateBucket(ctx, in); err != nil {
			return fmt.Errorf("s3 sink: create bucket %s: %w", s.cfg.bucket, err)
		}
		s.log.Info("s3 sink: bucket created", "bucket", s.cfg.bucket)
	}
	s.up = &uploader{client: client, bucket: s.cfg.bucket, partSize: s.cfg.partBytes,
		slots: make(chan struct{}, s.cfg.concurrency), ctype: s.cfg.format.contentType(), log: s.log}
	return nil
}

// Assign drops whatever the sink holds: the runtime resumes each
// partition at from, where the sink's first unstored record was.
func (s *Sink) Assign(from map[elog.TopicPartition]int64) {
	s.drop()
	for tp, off := range from {
		s.parts[tp] = &partition{tp: tp, next: off}
	}
}

// RawValues asks the runtime for the log's Avro bytes: a flattened
// change is read from them straight into its row.
func (s *Sink) RawValues() bool { return true }

// FetchBytes asks for fetches of 4 MiB: the sink holds its files in
// memory, and larger fetches (read ahead two at a time) would add to it
// without making the files come faster.
func (s *Sink) FetchBytes() int { return 4 << 20 }

// Holding returns the first offset of tp the sink holds unstored.
func (s *Sink) Holding(tp elog.TopicPartition) (int64, bool) {
	p := s.parts[tp]
	switch {
	case p == nil:
		return 0, false
	case len(p.pending) > 0:
		return p.pending[0].first, true
	case p.gen != nil:
		return p.gen.first, true
	}
	return 0, false
}

// Write takes the records into their partitions' files and stores every
// file a flush ended. Records it took before (a retried Write) are passed
// over; a record that cannot be written in its file's format is a
// RecordError, the store's troubles are errors to retry.
func (s *Sink) Write(ctx context.Context, recs []connect.Record) error {
	if s.up == nil {
		return errors.New("s3 sink: not open")
	}
	if err := s.takeAll(ctx, recs); err != nil {
		return err
	}
	return s.store(ctx)
}

// takeAll takes each record in turn, storing flushed files on the way
// when they come to half the memory budget.
func (s *Sink) takeAll(ctx context.Context, recs []connect.Record) error {
	for i := range recs {
		r := &recs[i]
		if r.Topic == "" {
			continue
		}
		tp := elog.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		p := s.parts[tp]
		if p == nil {
			p = &partition{tp: tp, next: -1}
			s.parts[tp] = p
		}
		if p.next >= 0 && r.Offset < p.next {
			continue
		}
		if err := s.take(p, r); err != nil {
			if connect.IsPermanent(err) {
				return err
			}
			if err := s.store(ctx); err != nil {
				return err
			}
			return &connect.RecordError{Index: i, Err: err}
		}
		p.next = r.Offset + 1
		if s.held > s.cfg.memory/2 { // flushed files waiting: store them before taking more
			if err := s.store(ctx); err != nil {
				return err
			}
		}
	}
	return nil
}

// take writes one record into its partition's generation, flushing the
// generation where the record says.
func (s *Sink) take(p *partition, r *connect.Record) error {
	if r.Value == nil {
		return nil // a tombstone: a delete is the envelope before it
	}
	var row any
	var sh *shape
	var err error
	var table *avrobin.Flat
	var slow func() (any, error)                    // the row as a value, where the direct one will not do
	if av, ok := r.Value.(*connect.AvroValue); ok { // the log's bytes (RawValues)
		if sh, err = s.shape(av.Schema); err != nil {
			return err
		}
		switch {
		case s.cfg.format.name == "parquet" && len(s.cfg.timeField) == 0 && sh.flatParquet() != nil:
			pr, f, err := sh.directRow(av.Body, r)
			if err != nil {
				return err
			}
			row, table = pr, &f
			slow = func() (any, error) { o, _, err := sh.rawRow(av.Body, r); return o, err }
		case s.cfg.format.name == "jsonl" && len(s.cfg.timeField) == 0 && sh.flatJSON() != nil:
			line, f, err := sh.directJSON(av.Body, r)
			if err != nil {
				return err
			}
			row, table = line, &f
		case sh.raw != nil:
			o, f, err := sh.rawRow(av.Body, r)
			if err != nil {
				return err
			}
			row, table = o, &f
		default:
			v, err := av.Decode()
			if err != nil {
				return err
			}
			rec := *r
			rec.Value, rec.ValueSchema = v, av.Schema
			r = &rec
		}
	} else if sh, err = s.shape(r.ValueSchema); err != nil {
		return err
	}
	if row == nil {
		row = r.Value
		if sh != nil {
			if row, err = sh.row(r); err != nil {
				return err
			}
		}
	}
	vals := pathVals{topic: r.Topic, partition: r.Partition, at: s.timeOf(r, row)}
	if s.cfg.path.byTable {
		if table != nil && table.Table != "" {
			vals.schema, vals.table = cmp.Or(table.Schema, table.DB), table.Table
		} else {
			vals.schema, vals.table = tableOf(r)
		}
	}
	var window int64
	if s.cfg.rotate > 0 {
		window = floorDiv(vals.at.UnixNano(), int64(s.cfg.rotate))
		if p.gen != nil && window != p.gen.window {
			if err := s.flush(p); err != nil {
				return err
			}
		}
	}
	s.key = s.cfg.path.render(s.key[:0], &vals)
	g := p.gen
	if g == nil {
		g = &generation{first: r.Offset, window: window}
	}
	f, row, err := s.fileFor(g, string(s.key), sh, row, slow, r)
	if err != nil {
		return err
	}
	n, err := f.w.add(row)
	if err != nil {
		if f.records == 0 { // the file was begun for this record: it goes with it
			g.files = g.files[:len(g.files)-1]
			f.w.abort()
			f.sp.release()
		}
		return err
	}
	f.records++
	f.last = r.Offset
	g.records++
	g.bytes += int64(n)
	p.gen = g
	if (s.cfg.flushRecords > 0 && g.records >= s.cfg.flushRecords) || g.bytes >= s.cfg.flushBytes {
		return s.flush(p)
	}
	return nil
}

// fileFor finds the generation's file for a row of shape sh at path: one
// of the same shape, else one whose schema can hold the row (projected
// into it), else a new one.
func (s *Sink) fileFor(g *generation, path string, sh *shape, row any, slow func() (any, error), r *connect.Record) (*file, any, error) {
	var fit *file
	for i := len(g.files) - 1; i >= 0; i-- {
		f := g.files[i]
		if f.path != path {
			continue
		}
		if sh == nil || f.sh == nil || f.sh.fp == sh.fp || s.cfg.format.name == "jsonl" {
			return f, row, nil
		}
		if fit == nil && canTake(f.sh.out, sh.out) {
			fit = f
		}
	}
	if fit != nil {
		if slow != nil { // a row shredded for its own shape: as a value, to project
			var err error
			if row, err = slow(); err != nil {
				return nil, nil, err
			}
		}
		return fit, project(fit.sh.out, sh.out, row), nil
	}
	f := &file{path: path, sh: sh, first: r.Offset, sp: newSpool(s.mem, s.cfg.spillDir)}
	f.key = objectKey(s.cfg.prefix, path, r.Topic, r.Partition, r.Offset, s.cfg.format.ext())
	w, err := s.cfg.format.open(f.sp, sh, f.key)
	if err != nil {
		f.sp.release()
		return nil, nil, err
	}
	f.w = w
	g.files = append(g.files, f)
	return f, row, nil
}

// flush ends the partition's open generation: its files are finished
// and wait to be stored.
func (s *Sink) flush(p *partition) error {
	g := p.gen
	if g == nil {
		return nil
	}
	p.gen = nil
	for _, f := range g.files {
		if err := f.w.finish(); err != nil {
			// The records are taken and cannot be written again here: the
			// task stops, and resumes from the committed offsets.
			return connect.Permanent(fmt.Errorf("s3 sink: finish %s: %w", f.key, err))
		}
		s.held += f.sp.Size()
	}
	if len(g.files) > 0 {
		p.pending = append(p.pending, g)
	}
	return nil
}

// store uploads every flushed file not yet stored, then lets go of the
// generations whose files are all stored.
func (s *Sink) store(ctx context.Context) error {
	var todo []*file
	for _, p := range s.parts {
		for _, g := range p.pending {
			for _, f := range g.files {
				if !f.stored {
					todo = append(todo, f)
				}
			}
		}
	}
	if len(todo) == 0 {
		return nil
	}
	err := s.up.upload(ctx, todo)
	for _, p := range s.parts {
		for len(p.pending) > 0 && allStored(p.pending[0]) {
			for _, f := range p.pending[0].files {
				s.held -= f.sp.Size()
				f.sp.release()
			}
			p.pending = p.pending[1:]
		}
	}
	return err
}

func allStored(g *generation) bool {
	for _, f := range g.files {
		if !f.stored {
			return false
		}
	}
	return true
}

// shape returns the cached shape of a value schema; nil for values
// without one.
func (s *Sink) shape(vs avro.Schema) (*shape, error) {
	if vs == nil {
		if s.cfg.format.name != "jsonl" {
			return nil, fmt.Errorf("the record's value has no schema: %s files need one (jsonl takes schemaless values)", s.cfg.format.name)
		}
		return nil, nil
	}
	if sh, ok := s.shapes[vs]; ok {
		return sh, nil
	}
	sh, err := newShape(vs, s.cfg.flatten)
	if err != nil {
		return nil, err
	}
	if len(s.shapes) > 4096 {
		clear(s.shapes)
	}
	s.shapes[vs] = sh
	return sh, nil
}

// timeOf is the time a record's path is rendered with and its rotation
// window read from: the time field's value when configured and set, else
// the record's timestamp; in the configured zone.
func (s *Sink) timeOf(r *connect.Record, row any) time.Time {
	at := r.Timestamp
	if len(s.cfg.timeField) > 0 {
		if t, ok := timeOf(lookup(row, s.cfg.timeField)); ok {
			at = t
		} else if s.cfg.timeField[0] == "after" { // a delete has its row before
			if t, ok := timeOf(lookup(row, append([]string{"before"}, s.cfg.timeField[1:]...))); ok {
				at = t
			}
		}
	}
	return at.In(s.cfg.zone)
}

func lookup(v any, path []string) any {
	for _, k := range path {
		switch m := v.(type) {
		case map[string]any:
			v = m[k]
		case *avrobin.Ordered:
			v, _ = m.Get(k)
		default:
			return nil
		}
	}
	return v
}

// tableOf reads the schema (or database) and table of a change from its
// source block, else from the topic's last two parts.
func tableOf(r *connect.Record) (schema, table string) {
	if env, ok := r.Value.(map[string]any); ok {
		if src, ok := env["source"].(map[string]any); ok {
			table, _ = src["table"].(string)
			if schema, _ = src["schema"].(string); schema == "" {
				schema, _ = src["db"].(string)
			}
			if table != "" {
				return schema, table
			}
		}
	}
	parts := strings.Split(r.Topic, ".")
	table = parts[len(parts)-1]
	if len(parts) > 1 {
		schema = parts[len(parts)-2]
	}
	return schema, table
}

func floorDiv(a, b int64) int64 {
	q := a / b
	if (a%b != 0) && (a < 0) {
		q--
	}
	return q
}

// drop lets go of everything held.
func (s *Sink) drop() {
	for _, p := range s.parts {
		if p.gen != nil {
			for _, f := range p.gen.files {
				f.w.abort()
			}
		}
		for _, g := range append(p.pending, p.gen) {
			if g == nil {
				continue
			}
			for _, f := range g.files {
				f.sp.release()
			}
		}
	}
	clear(s.parts)
	s.held = 0
}

// Close lets go of what the sink holds unstored; the runtime has not
// committed past it, so it comes again.
func (s *Sink) Close() error {
	s.drop()
	return nil
}
