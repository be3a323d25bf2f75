package s3

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hamba/avro/v2"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"
	pqcompress "github.com/parquet-go/parquet-go/compress"
	pqsnappy "github.com/parquet-go/parquet-go/compress/snappy"
	pquncompressed "github.com/parquet-go/parquet-go/compress/uncompressed"
	pqzstd "github.com/parquet-go/parquet-go/compress/zstd"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// A format writes one file's rows into its spool. Its bytes depend on the
// rows alone (no clock, no random sync marker, map keys in order), so a
// file written again after a crash is the same object.
type fileWriter interface {
	// add writes one row, a value of the file's shape, and returns its
	// size before compression; on an error nothing was written.
	add(v any) (int, error)
	// finish writes the file's end.
	finish() error
	// abort lets go of a file that will not be finished.
	abort()
}

// format is the configured format and compression.
type format struct {
	name        string // jsonl, avro, parquet
	compression string // none, gzip, zstd, deflate, snappy
}

func (f format) ext() string {
	switch f.name {
	case "jsonl":
		switch f.compression {
		case "gzip":
			return ".jsonl.gz"
		case "zstd":
			return ".jsonl.zst"
		}
		return ".jsonl"
	case "avro":
		return ".avro"
	}
	return ".parquet"
}

func (f format) contentType() string {
	switch f.name {
	case "jsonl":
		switch f.compression {
		case "gzip":
			return "application/gzip"
		case "zstd":
			return "application/zstd"
		}
		return "application/x-ndjson"
	case "avro":
		return "application/avro"
	}
	return "application/vnd.apache.parquet"
}

// open starts a file of shape sh (nil: values without a schema, jsonl
// only) in w; key names it, for what must differ between files.
func (f format) open(w io.Writer, sh *shape, key string) (fileWriter, error) {
	switch f.name {
	case "jsonl":
		j := &jsonlWriter{out: w}
		if sh != nil {
			j.schema = sh.out
		}
		switch f.compression {
		case "gzip":
			z, err := gzip.NewWriterLevel(w, gzip.DefaultCompression) // no name, no time: the same bytes every time
			if err != nil {
				return nil, err
			}
			j.out, j.closer = z, z
		case "zstd":
			z, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
			if err != nil {
				return nil, err
			}
			j.out, j.closer = z, z
		}
		return j, nil
	case "avro":
		return newOCFWriter(w, sh, f.compression, key)
	case "parquet":
		return newParquetWriter(w, sh, f.compression)
	}
	return nil, fmt.Errorf("format %s is unknown", f.name)
}

// jsonlWriter writes one JSON value a line.
type jsonlWriter struct {
	out    io.Writer
	closer io.Closer
	schema avro.Schema
	line   []byte
}

func (j *jsonlWriter) add(v any) (int, error) {
	if l, ok := v.(*jsonLine); ok { // rendered already (a flattened change from the log's bytes)
		if _, err := j.out.Write(l.b); err != nil {
			return 0, err
		}
		return len(l.b), nil
	}
	var err error
	if j.line, err = avrobin.AppendJSON(j.line[:0], v, j.schema); err != nil {
		return 0, err
	}
	j.line = append(j.line, '\n')
	if _, err := j.out.Write(j.line); err != nil {
		return 0, err
	}
	return len(j.line), nil
}

func (j *jsonlWriter) abort() {}

func (j *jsonlWriter) finish() error {
	if j.closer != nil {
		return j.closer.Close()
	}
	return nil
}

// ocfWriter writes an Avro object container file: the header with the
// schema and codec, then blocks of rows, each followed by the file's sync
// marker (derived from the object's key, so it is the same every time).
type ocfWriter struct {
	out     io.Writer
	codec   *avrobin.Codec
	sync    [16]byte
	compr   string
	block   []byte
	count   int64
	scratch []byte
	zw      *zstd.Encoder
	fw      *flate.Writer
	zbuf    bytes.Buffer
}

const ocfBlockBytes = 256 << 10

func newOCFWriter(w io.Writer, sh *shape, compression, key string) (*ocfWriter, error) {
	if sh == nil {
		return nil, fmt.Errorf("avro files need records with a schema")
	}
	o := &ocfWriter{out: w, codec: sh.codec, compr: compression}
	h := sha256.Sum256([]byte("eddy ocf sync " + key))
	copy(o.sync[:], h[:])
	codec := "null"
	switch compression {
	case "deflate":
		codec = "deflate"
		var err error
		if o.fw, err = flate.NewWriter(&o.zbuf, flate.DefaultCompression); err != nil {
			return nil, err
		}
	case "zstd":
		codec = "zstandard"
		var err error
		if o.zw, err = zstd.NewWriter(nil, zstd.WithEncoderConcurrency(1)); err != nil {
			return nil, err
		}
	}
	// The header: magic, the metadata map (keys in order), the sync marker.
	hd := []byte("Obj\x01")
	hd = binary.AppendVarint(hd, 2)
	hd = appendBytes(hd, []byte("avro.codec"))
	hd = appendBytes(hd, []byte(codec))
	hd = appendBytes(hd, []byte("avro.schema"))
	hd = appendBytes(hd, []byte(sh.out.String()))
	hd = binary.AppendVarint(hd, 0)
	hd = append(hd, o.sync[:]...)
	if _, err := w.Write(hd); err != nil {
		return nil, err
	}
	return o, nil
}

func appendBytes(dst, b []byte) []byte {
	return append(binary.AppendVarint(dst, int64(len(b))), b...)
}

func (o *ocfWriter) add(v any) (int, error) {
	var err error
	if o.scratch, err = o.codec.Encode(o.scratch[:0], v); err != nil {
		return 0, err
	}
	o.block = append(o.block, o.scratch...)
	o.count++
	if len(o.block) >= ocfBlockBytes {
		if err := o.flush(); err != nil {
			return 0, err
		}
	}
	return len(o.scratch), nil
}

// flush writes the block of rows gathered so far.
func (o *ocfWriter) flush() error {
	if o.count == 0 {
		return nil
	}
	data := o.block
	switch {
	case o.fw != nil:
		o.zbuf.Reset()
		o.fw.Reset(&o.zbuf)
		o.fw.Write(o.block)
		if err := o.fw.Close(); err != nil {
			return err
		}
		data = o.zbuf.Bytes()
	case o.zw != nil:
		data = o.zw.EncodeAll(o.block, o.zbuf.AvailableBuffer()[:0])
	}
	head := binary.AppendVarint(nil, o.count)
	head = binary.AppendVarint(head, int64(len(data)))
	if _, err := o.out.Write(head); err != nil {
		return err
	}
	if _, err := o.out.Write(data); err != nil {
		return err
	}
	if _, err := o.out.Write(o.sync[:]); err != nil {
		return err
	}
	o.block, o.count = o.block[:0], 0
	return nil
}

func (o *ocfWriter) abort() {
	if o.zw != nil {
		o.zw.Close()
	}
}

func (o *ocfWriter) finish() error {
	err := o.flush()
	if o.zw != nil {
		o.zw.Close()
	}
	return err
}

// parquetWriter writes a Parquet file: rows shredded by the shape's
// compiled schema, in row groups of about parquetRowGroupBytes of values
// (a scan reads large column chunks; the writer holds one group in memory
// at most), with statistics per column chunk and page. Rows are shredded
// on the caller's goroutine and written (encoded, compressed, spooled) on
// one of the file's own, so a partition's decoding and encoding run side
// by side; the rows it is given hold no memory of the caller's.
type parquetWriter struct {
	pq      *avrobin.Parquet
	rows    []parquet.Row // the batch being filled
	n       int
	grouped int64 // bytes of values since the last row group
	work    chan []parquet.Row
	free    chan []parquet.Row
	done    chan struct{}
	err     error // the writer goroutine's, read after done
	failed  atomic.Bool
	closed  bool
}

const (
	parquetRowGroupBytes = 32 << 20
	parquetRowBatch      = 512
)

func newParquetWriter(w io.Writer, sh *shape, compression string) (*parquetWriter, error) {
	if sh == nil {
		return nil, fmt.Errorf("parquet files need records with a schema")
	}
	pq, err := sh.parquet()
	if err != nil {
		return nil, err
	}
	var codec pqcompress.Codec = &fastSnappy{}
	switch compression {
	case "zstd":
		codec = &pqzstd.Codec{Level: pqzstd.DefaultLevel, Concurrency: 1}
	case "none":
		codec = &pquncompressed.Codec{}
	}
	pw := parquet.NewWriter(w, pq.Schema, parquet.Compression(codec), parquet.DataPageStatistics(true),
		parquet.PageBufferSize(1<<20), parquet.CreatedBy("eddy", "", ""),
		parquet.KeyValueMetadata("parquet.avro.schema", sh.out.String()))
	p := &parquetWriter{pq: pq, work: make(chan []parquet.Row, 2), free: make(chan []parquet.Row, 3), done: make(chan struct{})}
	for range 2 {
		p.free <- make([]parquet.Row, parquetRowBatch)
	}
	p.rows = make([]parquet.Row, parquetRowBatch)
	go p.write(pw)
	return p, nil
}

// write is the file's goroutine: batches of rows, in order; an empty
// batch ends a row group; the channel's close ends the file.
func (p *parquetWriter) write(pw *parquet.Writer) {
	defer close(p.done)
	for batch := range p.work {
		if p.err == nil {
			if len(batch) == 0 {
				p.err = pw.Flush()
			} else {
				_, p.err = pw.WriteRows(batch)
				p.free <- batch[:cap(batch)]
			}
			if p.err != nil {
				p.failed.Store(true)
			}
		} else if len(batch) > 0 {
			p.free <- batch[:cap(batch)]
		}
	}
	if p.err == nil {
		p.err = pw.Close()
	}
}

func (p *parquetWriter) add(v any) (int, error) {
	if p.failed.Load() {
		<-p.done
		return 0, connect.Permanent(fmt.Errorf("write parquet: %w", p.err))
	}
	var row parquet.Row
	var size int
	if pr, ok := v.(*avrobin.ParquetRow); ok { // shredded already (a flattened change from the log's bytes)
		row, size = append(p.rows[p.n][:0], pr.Row...), pr.Size
	} else {
		var err error
		if row, size, err = p.pq.Row(p.rows[p.n], v); err != nil {
			p.rows[p.n] = row
			return 0, err
		}
	}
	p.rows[p.n] = row
	p.n++
	p.grouped += int64(size)
	if p.n == len(p.rows) || p.grouped >= parquetRowGroupBytes {
		p.send()
	}
	if p.grouped >= parquetRowGroupBytes {
		p.work <- nil
		p.grouped = 0
	}
	return size, nil
}

// send hands the batch to the writer and takes a free one (its rows'
// values slices are reused).
func (p *parquetWriter) send() {
	if p.n == 0 {
		return
	}
	p.work <- p.rows[:p.n]
	p.rows, p.n = <-p.free, 0
}

func (p *parquetWriter) finish() error {
	if p.closed {
		<-p.done
		return p.err
	}
	p.send()
	p.closed = true
	close(p.work)
	<-p.done
	return p.err
}

func (p *parquetWriter) abort() {
	p.n = 0
	p.finish()
}

// fastSnappy is Parquet's SNAPPY codec with the quicker of S2's snappy
// encoders (parquet-go's own uses the slower "better" one, a tenth of
// the sink's time for a few percent of size). Readers see plain snappy.
type fastSnappy struct{ pqsnappy.Codec }

func (*fastSnappy) Encode(dst, src []byte) ([]byte, error) { return s2.EncodeSnappy(dst, src), nil }
