package log

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/klauspost/compress/zstd"
)

// Layout of a RecordBatch v2 header (all integers big-endian), as Kafka
// defines it. The CRC-32C covers everything from the attributes to the end
// of the batch, so the base offset can be assigned after encoding without
// recomputing it.
const (
	offBaseOffset      = 0
	offBatchLength     = 8
	offLeaderEpoch     = 12
	offMagic           = 16
	offCRC             = 17
	offAttributes      = 21
	offLastOffsetDelta = 23
	offBaseTimestamp   = 27
	offMaxTimestamp    = 35
	offProducerID      = 43
	offProducerEpoch   = 51
	offBaseSequence    = 53
	offRecordCount     = 57

	// BatchHeaderSize is the size of a RecordBatch v2 header.
	BatchHeaderSize = 61
	// batchLogOverhead is what precedes the length-counted part of a batch.
	batchLogOverhead = 12

	magicV2 = 2

	attrCompressionMask = 0x07
	attrTimestampType   = 0x08
	attrTransactional   = 0x10
	attrControl         = 0x20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Compression names a codec for the records section of a batch. The values
// are Kafka's attribute codes.
type Compression int8

// Codecs Eddy writes and reads. Kafka's snappy (1) and lz4 (3) are
// recognised when decoding and refused with ErrUnsupportedCompression.
const (
	CompressionNone Compression = 0
	CompressionGzip Compression = 1
	CompressionZstd Compression = 4
)

// ParseCompression maps a config value to a codec.
func ParseCompression(s string) (Compression, error) {
	switch s {
	case "", "none":
		return CompressionNone, nil
	case "gzip":
		return CompressionGzip, nil
	case "zstd":
		return CompressionZstd, nil
	}
	return 0, fmt.Errorf("unknown compression %q (want none, gzip or zstd)", s)
}

func (c Compression) String() string {
	switch c {
	case CompressionNone:
		return "none"
	case CompressionGzip:
		return "gzip"
	case 2:
		return "snappy"
	case 3:
		return "lz4"
	case CompressionZstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", int8(c))
}

// Errors reported when a batch cannot be decoded. Decoding never panics on
// bad input; every failure wraps ErrCorruptBatch.
var (
	ErrCorruptBatch           = errors.New("corrupt record batch")
	ErrUnsupportedCompression = errors.New("unsupported compression")
)

// Header is a record header: a string key and an opaque value.
type Header struct {
	Key   string
	Value []byte
}

// Record is one record of the log. Key and Value are nil for a null key or
// value; a record with a nil Value is a tombstone. Records returned by the
// decoder alias the buffer they were decoded from.
type Record struct {
	Offset    int64
	Timestamp time.Time
	Key       []byte
	Value     []byte
	Headers   []Header
}

// BatchHeader is the decoded fixed part of a RecordBatch v2.
type BatchHeader struct {
	BaseOffset      int64
	Length          int32 // bytes after the length field
	Magic           int8
	CRC             uint32
	Attributes      int16
	LastOffsetDelta int32
	BaseTimestamp   int64
	MaxTimestamp    int64
	ProducerID      int64
	ProducerEpoch   int16
	BaseSequence    int32
	RecordCount     int32
}

// Size is the number of bytes the whole batch occupies.
func (h *BatchHeader) Size() int { return int(h.Length) + batchLogOverhead }

// LastOffset is the offset of the last record the batch was written with.
func (h *BatchHeader) LastOffset() int64 { return h.BaseOffset + int64(h.LastOffsetDelta) }

// Compression is the codec of the records section.
func (h *BatchHeader) Compression() Compression {
	return Compression(h.Attributes & attrCompressionMask)
}

// IsControl reports whether the batch holds Kafka control records.
func (h *BatchHeader) IsControl() bool { return h.Attributes&attrControl != 0 }

// ParseBatchHeader decodes the fixed header at the start of b and checks the
// fields that can be checked without the body. It does not verify the CRC.
func ParseBatchHeader(b []byte) (BatchHeader, error) {
	var h BatchHeader
	if len(b) < BatchHeaderSize {
		return h, fmt.Errorf("%w: %d bytes, a header needs %d", ErrCorruptBatch, len(b), BatchHeaderSize)
	}
	h.BaseOffset = int64(binary.BigEndian.Uint64(b[offBaseOffset:]))
	h.Length = int32(binary.BigEndian.Uint32(b[offBatchLength:]))
	h.Magic = int8(b[offMagic])
	h.CRC = binary.BigEndian.Uint32(b[offCRC:])
	h.Attributes = int16(binary.BigEndian.Uint16(b[offAttributes:]))
	h.LastOffsetDelta = int32(binary.BigEndian.Uint32(b[offLastOffsetDelta:]))
	h.BaseTimestamp = int64(binary.BigEndian.Uint64(b[offBaseTimestamp:]))
	h.MaxTimestamp = int64(binary.BigEndian.Uint64(b[offMaxTimestamp:]))
	h.ProducerID = int64(binary.BigEndian.Uint64(b[offProducerID:]))
	h.ProducerEpoch = int16(binary.BigEndian.Uint16(b[offProducerEpoch:]))
	h.BaseSequence = int32(binary.BigEndian.Uint32(b[offBaseSequence:]))
	h.RecordCount = int32(binary.BigEndian.Uint32(b[offRecordCount:]))
	switch {
	case h.Magic != magicV2:
		return h, fmt.Errorf("%w: magic %d, want 2", ErrCorruptBatch, h.Magic)
	case h.Length < BatchHeaderSize-batchLogOverhead:
		return h, fmt.Errorf("%w: length %d below the header size", ErrCorruptBatch, h.Length)
	case h.BaseOffset < 0:
		return h, fmt.Errorf("%w: negative base offset %d", ErrCorruptBatch, h.BaseOffset)
	case h.LastOffsetDelta < 0 || h.RecordCount < 0:
		return h, fmt.Errorf("%w: negative last offset delta or record count", ErrCorruptBatch)
	}
	return h, nil
}

// VerifyBatch checks the CRC-32C of one complete batch.
func VerifyBatch(h *BatchHeader, b []byte) error {
	if len(b) < h.Size() {
		return fmt.Errorf("%w: batch at offset %d is truncated (%d of %d bytes)", ErrCorruptBatch, h.BaseOffset, len(b), h.Size())
	}
	if got := crc32.Checksum(b[offAttributes:h.Size()], castagnoli); got != h.CRC {
		return fmt.Errorf("%w: batch at offset %d: crc %08x, want %08x", ErrCorruptBatch, h.BaseOffset, got, h.CRC)
	}
	return nil
}

// batchInfo is what the log needs to know of a batch it appends.
type batchInfo struct {
	count        int64 // lastOffsetDelta + 1
	maxTimestamp int64
}

// encodeBatch encodes recs as one RecordBatch v2 with base offset 0; the
// caller patches the base offset in when it assigns offsets. A zero
// Timestamp takes now. Records' Offset fields are ignored.
func encodeBatch(dst []byte, recs []Record, c Compression, now time.Time) ([]byte, batchInfo, error) {
	return encodeBatchWith(dst, recs, c, now, -1, 0)
}

// encodeBatchWith encodes recs; with base >= 0 the records keep their own
// offsets (Offset - base is each offset delta) and the batch keeps
// lastDelta, which is how compaction rewrites a batch without renumbering.
func encodeBatchWith(dst []byte, recs []Record, c Compression, now time.Time, base int64, lastDelta int32) ([]byte, batchInfo, error) {
	if len(recs) == 0 {
		return dst, batchInfo{}, errors.New("encode batch: no records")
	}
	delta := func(i int) int64 { return int64(i) }
	if base >= 0 {
		delta = func(i int) int64 { return recs[i].Offset - base }
	} else {
		lastDelta = int32(len(recs) - 1)
	}
	nowMs := now.UnixMilli()
	ts := func(r *Record) int64 {
		if r.Timestamp.IsZero() {
			return nowMs
		}
		return r.Timestamp.UnixMilli()
	}
	baseTs, maxTs := ts(&recs[0]), ts(&recs[0])
	for i := range recs {
		t := ts(&recs[i])
		baseTs = min(baseTs, t)
		maxTs = max(maxTs, t)
	}
	start := len(dst)
	dst = append(dst, make([]byte, BatchHeaderSize)...)
	h := dst[start:]
	binary.BigEndian.PutUint32(h[offLeaderEpoch:], 0)
	h[offMagic] = magicV2
	binary.BigEndian.PutUint16(h[offAttributes:], uint16(c))
	binary.BigEndian.PutUint64(h[offBaseOffset:], uint64(max(base, 0)))
	binary.BigEndian.PutUint32(h[offLastOffsetDelta:], uint32(lastDelta))
	binary.BigEndian.PutUint64(h[offBaseTimestamp:], uint64(baseTs))
	binary.BigEndian.PutUint64(h[offMaxTimestamp:], uint64(maxTs))
	binary.BigEndian.PutUint64(h[offProducerID:], ^uint64(0)) // -1: no idempotent producer
	binary.BigEndian.PutUint16(h[offProducerEpoch:], ^uint16(0))
	binary.BigEndian.PutUint32(h[offBaseSequence:], ^uint32(0))
	binary.BigEndian.PutUint32(h[offRecordCount:], uint32(len(recs)))

	if c == CompressionNone {
		for i := range recs {
			dst = appendRecord(dst, &recs[i], ts(&recs[i])-baseTs, delta(i))
		}
	} else {
		raw := make([]byte, 0, estimateSize(recs))
		for i := range recs {
			raw = appendRecord(raw, &recs[i], ts(&recs[i])-baseTs, delta(i))
		}
		var err error
		if dst, err = compress(dst, raw, c); err != nil {
			return dst[:start], batchInfo{}, err
		}
	}
	b := dst[start:]
	binary.BigEndian.PutUint32(b[offBatchLength:], uint32(len(b)-batchLogOverhead))
	binary.BigEndian.PutUint32(b[offCRC:], crc32.Checksum(b[offAttributes:], castagnoli))
	return dst, batchInfo{count: int64(lastDelta) + 1, maxTimestamp: maxTs}, nil
}

func estimateSize(recs []Record) int {
	n := 0
	for i := range recs {
		n += recordSize(&recs[i])
	}
	return n
}

// recordSize is a close upper bound of a record's encoded size.
func recordSize(r *Record) int {
	n := 1 + 3*binary.MaxVarintLen64 + len(r.Key) + len(r.Value) + 2*binary.MaxVarintLen32
	for _, h := range r.Headers {
		n += 2*binary.MaxVarintLen32 + len(h.Key) + len(h.Value)
	}
	return n
}

func appendRecord(dst []byte, r *Record, tsDelta, offDelta int64) []byte {
	bodyLen := 1 + varintLen(tsDelta) + varintLen(offDelta) +
		bytesLen(r.Key) + bytesLen(r.Value) + varintLen(int64(len(r.Headers)))
	for _, h := range r.Headers {
		bodyLen += varintLen(int64(len(h.Key))) + len(h.Key) + bytesLen(h.Value)
	}
	dst = binary.AppendVarint(dst, int64(bodyLen))
	dst = append(dst, 0) // attributes: unused
	dst = binary.AppendVarint(dst, tsDelta)
	dst = binary.AppendVarint(dst, offDelta)
	dst = appendBytes(dst, r.Key)
	dst = appendBytes(dst, r.Value)
	dst = binary.AppendVarint(dst, int64(len(r.Headers)))
	for _, h := range r.Headers {
		dst = binary.AppendVarint(dst, int64(len(h.Key)))
		dst = append(dst, h.Key...)
		dst = appendBytes(dst, h.Value)
	}
	return dst
}

func appendBytes(dst, b []byte) []byte {
	if b == nil {
		return binary.AppendVarint(dst, -1)
	}
	dst = binary.AppendVarint(dst, int64(len(b)))
	return append(dst, b...)
}

func bytesLen(b []byte) int {
	if b == nil {
		return varintLen(-1)
	}
	return varintLen(int64(len(b))) + len(b)
}

// varintLen is the size of a zigzag varint, Kafka's (and Go's) encoding.
func varintLen(v int64) int {
	u := uint64(v<<1) ^ uint64(v>>63)
	n := 1
	for u >= 0x80 {
		u >>= 7
		n++
	}
	return n
}

// codecs holds the stateless, concurrency-safe zstd encoder and decoder; they
// are costly to build, so they are built once per process on first use.
var codecs = sync.OnceValues(func() (*zstd.Encoder, *zstd.Decoder) {
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		panic(fmt.Sprintf("zstd encoder with static options: %v", err)) // programmer error
	}
	dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(256<<20))
	if err != nil {
		panic(fmt.Sprintf("zstd decoder with static options: %v", err))
	}
	return enc, dec
})

func compress(dst, raw []byte, c Compression) ([]byte, error) {
	switch c {
	case CompressionZstd:
		enc, _ := codecs()
		return enc.EncodeAll(raw, dst), nil
	case CompressionGzip:
		w := bytes.NewBuffer(dst)
		zw := gzip.NewWriter(w)
		if _, err := zw.Write(raw); err != nil {
			return dst, fmt.Errorf("gzip records: %w", err)
		}
		if err := zw.Close(); err != nil {
			return dst, fmt.Errorf("gzip records: %w", err)
		}
		return w.Bytes(), nil
	}
	return dst, fmt.Errorf("encode batch: %w: %s", ErrUnsupportedCompression, c)
}

// maxDecompressed bounds what one batch may inflate to, so a hostile batch
// cannot exhaust memory.
const maxDecompressed = 256 << 20

func decompress(body []byte, c Compression) ([]byte, error) {
	switch c {
	case CompressionZstd:
		_, dec := codecs()
		out, err := dec.DecodeAll(body, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: zstd: %v", ErrCorruptBatch, err)
		}
		return out, nil
	case CompressionGzip:
		zr, err := gzip.NewReader(bytes.NewReader(body))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorruptBatch, err)
		}
		out, err := io.ReadAll(io.LimitReader(zr, maxDecompressed+1))
		if err != nil {
			return nil, fmt.Errorf("%w: gzip: %v", ErrCorruptBatch, err)
		}
		if len(out) > maxDecompressed {
			return nil, fmt.Errorf("%w: gzip body inflates past %d bytes", ErrCorruptBatch, maxDecompressed)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s", ErrUnsupportedCompression, c)
}

// DecodeBatches decodes every complete batch in data, verifying each CRC,
// and appends its records to dst. Records with offsets below minOffset are
// skipped (a fetch starts at the batch that holds minOffset). Key, value and
// header values alias data or a fresh decompression buffer. Control batches
// are skipped. A trailing partial batch is an error; use SplitBatches first
// when data may end mid-batch.
func DecodeBatches(dst []Record, data []byte, minOffset int64) ([]Record, error) {
	// Room for every record at once, rather than growing batch by batch;
	// a count that cannot be (see decodeRecords) is left to fail there.
	n := 0
	for rest := data; len(rest) >= BatchHeaderSize; {
		h, err := ParseBatchHeader(rest)
		if err != nil || h.Size() > len(rest) || int(h.RecordCount) > (h.Size()-BatchHeaderSize)/7+1 {
			break
		}
		n += int(h.RecordCount)
		rest = rest[h.Size():]
	}
	dst = slices.Grow(dst, n)
	for len(data) > 0 {
		h, err := ParseBatchHeader(data)
		if err != nil {
			return dst, err
		}
		if err := VerifyBatch(&h, data); err != nil {
			return dst, err
		}
		if dst, err = decodeRecords(dst, &h, data[:h.Size()], minOffset); err != nil {
			return dst, err
		}
		data = data[h.Size():]
	}
	return dst, nil
}

func decodeRecords(dst []Record, h *BatchHeader, batch []byte, minOffset int64) ([]Record, error) {
	if h.IsControl() {
		return dst, nil
	}
	body := batch[BatchHeaderSize:]
	if c := h.Compression(); c != CompressionNone {
		var err error
		if body, err = decompress(body, c); err != nil {
			return dst, fmt.Errorf("batch at offset %d: %w", h.BaseOffset, err)
		}
	}
	// Each record takes at least 7 bytes, which bounds the count before any
	// allocation is sized by it.
	if int(h.RecordCount) > len(body)/7+1 {
		return dst, fmt.Errorf("%w: batch at offset %d claims %d records in %d bytes", ErrCorruptBatch, h.BaseOffset, h.RecordCount, len(body))
	}
	d := recordDecoder{b: body, headers: make([]Header, 0, headerCount(h, body))}
	for i := int32(0); i < h.RecordCount; i++ {
		r, err := d.record(h)
		if err != nil {
			return dst, fmt.Errorf("batch at offset %d, record %d: %w", h.BaseOffset, i, err)
		}
		if r.Offset >= minOffset {
			dst = append(dst, r)
		}
	}
	if len(d.b) != 0 {
		return dst, fmt.Errorf("%w: batch at offset %d has %d trailing bytes", ErrCorruptBatch, h.BaseOffset, len(d.b))
	}
	return dst, nil
}

// recordDecoder reads a batch's records. Their headers share one slice,
// and a header key the record before had is not allocated again.
type recordDecoder struct {
	b       []byte
	headers []Header // the batch's, in order
	last    []Header // the record before's
}

// headerCount guesses a batch's header count from its first record, so
// that the headers of records alike take one allocation.
func headerCount(h *BatchHeader, body []byte) int {
	d := recordDecoder{b: body}
	r, err := d.record(h)
	if err != nil {
		return 0
	}
	return min(len(r.Headers)*int(h.RecordCount), len(body)/2) // a header takes 2 bytes at least: a guess never outgrows the batch
}

func (d *recordDecoder) varint() (int64, error) {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", ErrCorruptBatch)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *recordDecoder) bytes() ([]byte, error) {
	n, err := d.varint()
	if err != nil {
		return nil, err
	}
	if n < 0 {
		if n != -1 {
			return nil, fmt.Errorf("%w: length %d", ErrCorruptBatch, n)
		}
		return nil, nil
	}
	if n > int64(len(d.b)) {
		return nil, fmt.Errorf("%w: length %d past the end of the record", ErrCorruptBatch, n)
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v, nil
}

func (d *recordDecoder) record(h *BatchHeader) (Record, error) {
	var r Record
	length, err := d.varint()
	if err != nil {
		return r, err
	}
	if length < 1 || length > int64(len(d.b)) {
		return r, fmt.Errorf("%w: record length %d with %d bytes left", ErrCorruptBatch, length, len(d.b))
	}
	rest := d.b[length:]
	d.b = d.b[1:length] // skip the attributes byte
	tsDelta, err := d.varint()
	if err != nil {
		return r, err
	}
	offDelta, err := d.varint()
	if err != nil {
		return r, err
	}
	if offDelta < 0 || offDelta > int64(h.LastOffsetDelta) {
		return r, fmt.Errorf("%w: offset delta %d outside 0..%d", ErrCorruptBatch, offDelta, h.LastOffsetDelta)
	}
	r.Offset = h.BaseOffset + offDelta
	r.Timestamp = time.UnixMilli(h.BaseTimestamp + tsDelta)
	if h.Attributes&attrTimestampType != 0 { // LogAppendTime: the batch's max timestamp
		r.Timestamp = time.UnixMilli(h.MaxTimestamp)
	}
	if r.Key, err = d.bytes(); err != nil {
		return r, err
	}
	if r.Value, err = d.bytes(); err != nil {
		return r, err
	}
	nh, err := d.varint()
	if err != nil {
		return r, err
	}
	if nh < 0 || nh > int64(len(d.b)/2) {
		return r, fmt.Errorf("%w: %d headers in %d bytes", ErrCorruptBatch, nh, len(d.b))
	}
	if nh > 0 {
		if cap(d.headers)-len(d.headers) < int(nh) {
			d.headers = make([]Header, 0, max(int(nh), 2*cap(d.headers)))
		}
		at := len(d.headers)
		d.headers = d.headers[:at+int(nh)]
		r.Headers = d.headers[at : at+int(nh) : at+int(nh)]
		for i := range r.Headers {
			k, err := d.bytes()
			if err != nil {
				return r, err
			}
			if i < len(d.last) && k != nil && d.last[i].Key == string(k) {
				r.Headers[i].Key = d.last[i].Key
			} else {
				if k == nil || !utf8.Valid(k) {
					return r, fmt.Errorf("%w: header key is null or not UTF-8", ErrCorruptBatch)
				}
				r.Headers[i].Key = string(k)
			}
			if r.Headers[i].Value, err = d.bytes(); err != nil {
				return r, err
			}
		}
		d.last = r.Headers
	}
	if len(d.b) != 0 {
		return r, fmt.Errorf("%w: %d bytes left inside the record", ErrCorruptBatch, len(d.b))
	}
	d.b = rest
	return r, nil
}
