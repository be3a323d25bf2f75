package log

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The on-disk batches must be Kafka's RecordBatch v2 to the byte, so that a
// Kafka-protocol front end can serve them as they are. franz-go's kmsg is an
// independent implementation of the protocol: batches Eddy writes must read
// back there unchanged, and batches it builds must decode here.

func kmsgRecords(t *testing.T, b *kmsg.RecordBatch) []kmsg.Record {
	t.Helper()
	var out []kmsg.Record
	rest := b.Records
	for i := int32(0); i < b.NumRecords; i++ {
		n, k := binary.Varint(rest)
		if k <= 0 || int(n)+k > len(rest) {
			t.Fatalf("record %d: bad length varint", i)
		}
		var r kmsg.Record
		if err := r.ReadFrom(rest[:k+int(n)]); err != nil {
			t.Fatalf("kmsg reading record %d: %v", i, err)
		}
		out = append(out, r)
		rest = rest[k+int(n):]
	}
	if len(rest) != 0 {
		t.Fatalf("%d bytes after the records", len(rest))
	}
	return out
}

func TestBatchesReadByKafkaImplementation(t *testing.T) {
	ts := time.UnixMilli(1_760_000_000_000)
	in := []Record{
		{Key: []byte("order-1"), Value: []byte(`{"id":1}`), Timestamp: ts, Headers: []Header{{"op", []byte("c")}}},
		{Key: nil, Value: []byte("keyless"), Timestamp: ts.Add(5 * time.Millisecond)},
		{Key: []byte("order-1"), Value: nil, Timestamp: ts.Add(-2 * time.Millisecond)},
	}
	data, _, err := encodeBatch(nil, in, CompressionNone, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint64(data, 42) // as the log assigns it
	var b kmsg.RecordBatch
	if err := b.ReadFrom(data); err != nil {
		t.Fatalf("kmsg: %v", err)
	}
	if b.FirstOffset != 42 || b.Magic != 2 || b.NumRecords != 3 || b.LastOffsetDelta != 2 ||
		b.FirstTimestamp != ts.Add(-2*time.Millisecond).UnixMilli() || b.MaxTimestamp != ts.Add(5*time.Millisecond).UnixMilli() ||
		b.ProducerID != -1 || b.ProducerEpoch != -1 || b.FirstSequence != -1 || int(b.Length) != len(data)-12 {
		t.Fatalf("kmsg read header %+v", b)
	}
	if uint32(b.CRC) != crc32.Checksum(data[21:], crc32.MakeTable(crc32.Castagnoli)) {
		t.Fatal("CRC is not CRC-32C of attributes..end")
	}
	if again := b.AppendTo(nil); !bytes.Equal(again, data) {
		t.Fatal("kmsg re-encodes the batch to different bytes")
	}
	recs := kmsgRecords(t, &b)
	for i, r := range recs {
		want := in[i]
		if !bytes.Equal(r.Key, want.Key) || (r.Key == nil) != (want.Key == nil) ||
			!bytes.Equal(r.Value, want.Value) || (r.Value == nil) != (want.Value == nil) ||
			r.OffsetDelta != int32(i) || b.FirstTimestamp+r.TimestampDelta64 != want.Timestamp.UnixMilli() {
			t.Fatalf("record %d as kmsg reads it: %+v, want %+v", i, r, want)
		}
	}
	if len(recs[0].Headers) != 1 || recs[0].Headers[0].Key != "op" || string(recs[0].Headers[0].Value) != "c" {
		t.Fatalf("headers as kmsg reads them: %+v", recs[0].Headers)
	}
}

func TestDecodesBatchesBuiltByKafkaImplementation(t *testing.T) {
	var body []byte
	rs := []kmsg.Record{
		{OffsetDelta: 0, TimestampDelta64: 0, Key: []byte("a"), Value: []byte("1")},
		{OffsetDelta: 1, TimestampDelta64: 7, Key: []byte("b"), Value: []byte("2"), Headers: []kmsg.Header{{Key: "h", Value: []byte("v")}}},
	}
	for _, r := range rs {
		body = appendKmsgRecord(body, r)
	}
	b := kmsg.RecordBatch{FirstOffset: 100, Magic: 2, LastOffsetDelta: 1, FirstTimestamp: 1_000, MaxTimestamp: 1_007,
		ProducerID: -1, ProducerEpoch: -1, FirstSequence: -1, NumRecords: 2, Records: body}
	b.Length = int32(49 + len(body))
	data := b.AppendTo(nil)
	binary.BigEndian.PutUint32(data[17:], crc32.Checksum(data[21:], crc32.MakeTable(crc32.Castagnoli)))
	got, err := DecodeBatches(nil, data, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Offset != 100 || got[1].Offset != 101 || string(got[1].Key) != "b" ||
		got[1].Timestamp.UnixMilli() != 1_007 || len(got[1].Headers) != 1 || string(got[1].Headers[0].Value) != "v" {
		t.Fatalf("decoded %+v", got)
	}
}

// appendKmsgRecord encodes r with its correct length prefix.
func appendKmsgRecord(dst []byte, r kmsg.Record) []byte {
	// Length counts the bytes after itself: encode once to measure.
	r.Length = 0
	enc := r.AppendTo(nil)
	_, k := binary.Varint(enc)
	r.Length = int32(len(enc) - k)
	return r.AppendTo(dst)
}
