// Package file is the file-sink plugin: each record becomes one JSON line
// appended to a file. The file is its own offset store: every line starts
// with its topic, partition and offset, so on open the sink reads them
// back, cuts a torn last line, and tells the runtime where each partition
// resumes. A batch is written with one write and fsynced before Write
// returns, so the runtime's commit never runs ahead of the file.
package file

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// New builds the sink from validated params.
func New(p connect.Params, _ connect.Env) (connect.Sink, error) {
	return &Sink{path: p.String("path"), fsync: p.Bool("fsync"), headers: p.Bool("include_headers")}, nil
}

// Sink appends JSON lines to a file.
type Sink struct {
	path    string
	fsync   bool
	headers bool

	f    *os.File
	next map[elog.TopicPartition]int64
	buf  bytes.Buffer
}

// line is the shape of one output line; the first three fields come first
// so that Offsets can read them without decoding the rest.
type line struct {
	Topic     string            `json:"topic"`
	Partition int               `json:"partition"`
	Offset    int64             `json:"offset"`
	Timestamp int64             `json:"timestamp"`
	Key       any               `json:"key"`
	Value     any               `json:"value"`
	Headers   map[string]string `json:"headers,omitempty"`
}

// Open opens the file, cutting a torn last line, and reads every line's
// position.
func (s *Sink) Open(context.Context) error {
	if err := os.MkdirAll(filepath.Dir(s.path), 0o755); err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	f, err := os.OpenFile(s.path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	next, good, err := scan(f)
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink: read %s: %w", s.path, err)
	}
	if err := f.Truncate(good); err != nil {
		f.Close()
		return fmt.Errorf("file sink: cut the torn tail of %s: %w", s.path, err)
	}
	if _, err := f.Seek(good, io.SeekStart); err != nil {
		f.Close()
		return err
	}
	s.f, s.next = f, next
	return nil
}

// scan reads the position of every complete line; good is the length of
// the complete lines.
func scan(f *os.File) (map[elog.TopicPartition]int64, int64, error) {
	next := map[elog.TopicPartition]int64{}
	r := bufio.NewReaderSize(f, 1<<20)
	var good int64
	for {
		l, err := r.ReadSlice('\n')
		for err == bufio.ErrBufferFull { // a line longer than the buffer
			var more []byte
			more, err = r.ReadSlice('\n')
			l = append(append([]byte(nil), l...), more...)
		}
		if err == io.EOF {
			return next, good, nil // a torn line, if any, is not counted
		}
		if err != nil {
			return nil, 0, err
		}
		var head struct {
			Topic     string `json:"topic"`
			Partition int    `json:"partition"`
			Offset    int64  `json:"offset"`
		}
		if err := json.Unmarshal(l, &head); err != nil {
			return nil, 0, fmt.Errorf("line at byte %d: %w", good, err)
		}
		tp := elog.TopicPartition{Topic: head.Topic, Partition: head.Partition}
		next[tp] = max(next[tp], head.Offset+1)
		good += int64(len(l))
	}
}

// Offsets returns where each partition resumes, from the file itself.
func (s *Sink) Offsets(context.Context) (map[elog.TopicPartition]int64, error) {
	out := make(map[elog.TopicPartition]int64, len(s.next))
	for k, v := range s.next {
		out[k] = v
	}
	return out, nil
}

// Write appends the records' lines in one write and fsyncs. Records the
// file already holds (a replay after a crash) are skipped.
func (s *Sink) Write(_ context.Context, recs []connect.Record) error {
	s.buf.Reset()
	enc := json.NewEncoder(&s.buf)
	enc.SetEscapeHTML(false)
	var moved []position
	for i := range recs {
		r := &recs[i]
		tp := elog.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if r.Offset < s.next[tp] {
			continue
		}
		l := line{Topic: r.Topic, Partition: r.Partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli(), Key: jsonable(r.Key), Value: jsonable(r.Value)}
		if s.headers && len(r.Headers) > 0 {
			l.Headers = make(map[string]string, len(r.Headers))
			for _, h := range r.Headers {
				l.Headers[h.Key] = string(h.Value)
			}
		}
		if err := enc.Encode(&l); err != nil {
			if err := s.flush(); err != nil {
				return err
			}
			s.commit(moved)
			return &connect.RecordError{Index: i, Err: fmt.Errorf("render as JSON: %w", err)}
		}
		moved = append(moved, position{tp, r.Offset + 1})
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.commit(moved)
	return nil
}

// position is the next offset of a partition after a written record.
type position struct {
	tp  elog.TopicPartition
	off int64
}

// commit moves the in-memory positions once the lines are in the file.
func (s *Sink) commit(moved []position) {
	for _, m := range moved {
		s.next[m.tp] = max(s.next[m.tp], m.off)
	}
}

// flush writes the buffered lines and fsyncs. After a failed write the
// file is cut back to where it was, so a retry does not leave half a batch.
func (s *Sink) flush() error {
	if s.buf.Len() == 0 {
		return nil
	}
	at, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if _, err := s.f.Write(s.buf.Bytes()); err != nil {
		s.f.Truncate(at)
		s.f.Seek(at, io.SeekStart)
		return fmt.Errorf("file sink: write %s: %w", s.path, err)
	}
	if s.fsync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("file sink: fsync %s: %w", s.path, err)
		}
	}
	s.buf.Reset()
	return nil
}

// Close closes the file.
func (s *Sink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// jsonable renders values JSON has no form for: times as RFC 3339,
// decimals as exact strings, bytes as base64.
func jsonable(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = jsonable(e)
		}
	case []any:
		for i, e := range x {
			x[i] = jsonable(e)
		}
	case time.Time:
		return x.UTC().Format(time.RFC3339Nano)
	case []byte:
		return base64.StdEncoding.EncodeToString(x)
	case float64:
		if x != x || x > 1.7976931348623157e308 || x < -1.7976931348623157e308 {
			return strconv.FormatFloat(x, 'g', -1, 64) // NaN and infinities as strings
		}
	}
	return connect.JSONValue(v)
}
