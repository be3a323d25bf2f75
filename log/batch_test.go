package log

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"testing"
	"time"
)

// Records of a batch share one slice of headers and their repeated keys,
// yet each record's headers are its own: appending to one leaves the next
// alone, and a null key where the record before had an empty one is still
// refused.
func TestDecodedHeadersAreEachRecords(t *testing.T) {
	ts := time.UnixMilli(1_700_000_000_000)
	recs := []Record{
		{Value: []byte("1"), Headers: []Header{{"eddy.position", []byte("a")}, {"", []byte("x")}}, Timestamp: ts},
		{Value: []byte("2"), Headers: []Header{{"eddy.position", []byte("b")}, {"", nil}}, Timestamp: ts},
		{Value: []byte("3"), Headers: []Header{{"other", []byte("c")}}, Timestamp: ts},
	}
	b, _, err := encodeBatch(nil, recs, CompressionNone, ts)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeBatches(nil, b, 0)
	if err != nil {
		t.Fatal(err)
	}
	got[0].Headers = append(got[0].Headers, Header{"added", nil})
	for i, r := range got {
		want := recs[i].Headers
		if i == 0 {
			want = append(want, Header{"added", nil})
		}
		if len(r.Headers) != len(want) {
			t.Fatalf("record %d has %d headers, want %d", i, len(r.Headers), len(want))
		}
		for j, h := range want {
			if r.Headers[j].Key != h.Key || string(r.Headers[j].Value) != string(h.Value) {
				t.Fatalf("record %d header %d: %q=%q, want %q=%q", i, j, r.Headers[j].Key, r.Headers[j].Value, h.Key, h.Value)
			}
		}
	}
	// The second record's empty key made null: length -1 (zig-zag 1) for
	// 0, and the CRC made right again.
	at := bytes.Index(b, []byte("\x1aeddy.position\x02b\x00\x01"))
	if at < 0 {
		t.Fatal("the second record's headers are not where this test expects them")
	}
	b[at+len("\x1aeddy.position\x02b")] = 0x01
	binary.BigEndian.PutUint32(b[17:], crc32.Checksum(b[21:], crc32.MakeTable(crc32.Castagnoli)))
	if _, err := DecodeBatches(nil, b, 0); !errors.Is(err, ErrCorruptBatch) {
		t.Fatalf("a null header key decoded: %v", err)
	}
}
