package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	elog "github.com/eddy-cdc/eddy/log"
)

func testServer(t *testing.T) (*httptest.Server, *Client) {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	l, err := elog.Open(t.TempDir(), elog.WithLogger(quiet), elog.WithCleanerInterval(0))
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(NewLocal(l), quiet))
	c, err := NewClient(srv.URL, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(); srv.Close(); l.Close() })
	return srv, c
}

func call(t *testing.T, method, url, body string) (int, apiError) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e apiError
	b, _ := io.ReadAll(resp.Body)
	json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

func TestAdminAPIErrors(t *testing.T) {
	srv, c := testServer(t)
	if _, err := c.CreateTopic(t.Context(), "t", elog.TopicConfig{Partitions: 2}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		method, path, body string
		status             int
		code               string
	}{
		{"GET", "/topics/nope", "", 404, "unknown_topic"},
		{"POST", "/topics", `{"name":"t"}`, 409, "topic_exists"},
		{"POST", "/topics", `{"name":"bad name"}`, 400, "invalid_topic"},
		{"POST", "/topics", `{"name":"x","config":{"cleanup":"never"}}`, 400, "invalid_config"},
		{"POST", "/topics", `{"name":"x","bogus":1}`, 400, "bad_request"},
		{"POST", "/topics", `{not json`, 400, "bad_request"},
		{"POST", "/topics/t/records", `{"records":[]}`, 400, "bad_request"},
		{"POST", "/topics/t/records", `{"records":[{"value":"!!","value_encoding":"base64"}]}`, 400, "bad_request"},
		{"GET", "/topics/t/partitions/0/records?offset=5", "", 416, "offset_out_of_range"},
		{"GET", "/topics/t/partitions/9/records", "", 404, "unknown_topic"},
		{"GET", "/topics/t/partitions/x/records", "", 400, "bad_request"},
		{"GET", "/topics/t/partitions/0/records?max_bytes=0", "", 400, "bad_request"},
		{"GET", "/topics/t/partitions/0/offsets?at=soon", "", 400, "bad_request"},
		{"GET", "/groups/none", "", 404, "unknown_group"},
		{"POST", "/groups/g/members/m1/heartbeat", `{"generation":1}`, 404, "unknown_member"},
		{"DELETE", "/topics/__consumer_offsets", "", 400, "invalid_topic"},
	} {
		status, e := call(t, tc.method, srv.URL+tc.path, tc.body)
		if status != tc.status || e.ErrorCode != tc.code || e.Message == "" {
			t.Errorf("%s %s: %d %+v, want %d %s", tc.method, tc.path, status, e, tc.status, tc.code)
		}
	}
	// The client turns codes back into the log's sentinel errors.
	if _, err := c.DescribeTopic(t.Context(), "nope"); !errors.Is(err, elog.ErrUnknownTopic) {
		t.Fatalf("client error: %v", err)
	}
	if _, err := c.Fetch(t.Context(), "t", 0, 7, 100, 0); !errors.Is(err, elog.ErrOffsetOutOfRange) {
		t.Fatalf("client error: %v", err)
	}
}

func TestAdminAPIRecordsAreBinarySafe(t *testing.T) {
	srv, c := testServer(t)
	if _, err := c.CreateTopic(t.Context(), "t", elog.TopicConfig{}); err != nil {
		t.Fatal(err)
	}
	ts := time.UnixMilli(1_750_000_000_123)
	in := []elog.Record{
		{Key: []byte{0xff, 0x00, 0x01}, Value: []byte("plain text"), Timestamp: ts, Headers: []elog.Header{{Key: "h", Value: []byte{0x80}}, {Key: "h", Value: nil}}},
		{Key: []byte("k"), Value: nil, Timestamp: ts},
	}
	if _, err := c.Produce(t.Context(), "t", in); err != nil {
		t.Fatal(err)
	}
	res, err := c.Fetch(t.Context(), "t", 0, 0, 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	out, err := elog.DecodeBatches(nil, res.Data, 0)
	if err != nil || len(out) != 2 || res.HighWatermark != 2 || res.NextOffset != 2 {
		t.Fatalf("fetch: %d records, %+v, %v", len(out), res, err)
	}
	for i := range in {
		if !bytes.Equal(out[i].Key, in[i].Key) || !bytes.Equal(out[i].Value, in[i].Value) || (out[i].Value == nil) != (in[i].Value == nil) ||
			!out[i].Timestamp.Equal(ts) || len(out[i].Headers) != len(in[i].Headers) {
			t.Fatalf("record %d: got %+v want %+v", i, out[i], in[i])
		}
	}
	// The JSON form says which bytes are base64.
	resp, err := http.Get(srv.URL + "/topics/t/partitions/0/records?offset=0")
	if err != nil {
		t.Fatal(err)
	}
	var fr fetchResponse
	json.NewDecoder(resp.Body).Decode(&fr)
	resp.Body.Close()
	if len(fr.Records) != 2 || fr.Records[0].KeyEncoding != "base64" || *fr.Records[0].Value != "plain text" || fr.Records[1].Value != nil {
		t.Fatalf("json records: %+v", fr.Records)
	}
	// A long poll at the high watermark returns when a record arrives.
	go func() {
		time.Sleep(100 * time.Millisecond)
		c.Produce(t.Context(), "t", []elog.Record{{Value: []byte("late")}})
	}()
	start := time.Now()
	res, err = c.Fetch(t.Context(), "t", 0, 2, 1<<20, 5*time.Second)
	if err != nil || len(res.Data) == 0 || time.Since(start) > 4*time.Second {
		t.Fatalf("long poll: %v after %s", err, time.Since(start))
	}
}
