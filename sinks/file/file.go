// Package file is the file-sink plugin: each record becomes one JSON line
// appended to a file. The file is its own offset store: every line starts
// with its topic, partition and offset, so on open the sink reads them
// back, cuts a torn last line, and tells the runtime where each partition
// resumes. A batch is written with one write and fsynced before Write
// returns, so the runtime's commit never runs ahead of the file.
package file

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/avrobin"
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
	out  []byte // the lines of the batch being written
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
	s.out = s.out[:0]
	var moved []position
	for i := range recs {
		r := &recs[i]
		tp := elog.TopicPartition{Topic: r.Topic, Partition: r.Partition}
		if r.Offset < s.next[tp] {
			continue
		}
		start := len(s.out)
		var err error
		if s.out, err = s.appendLine(s.out, r); err != nil {
			s.out = s.out[:start]
			if err := s.flush(); err != nil {
				return err
			}
			s.commit(moved)
			return &connect.RecordError{Index: i, Err: err}
		}
		moved = append(moved, position{tp, r.Offset + 1})
	}
	if err := s.flush(); err != nil {
		return err
	}
	s.commit(moved)
	return nil
}

// appendLine renders one record as a JSON line; the position comes first,
// as scan expects.
func (s *Sink) appendLine(dst []byte, r *connect.Record) ([]byte, error) {
	dst = append(dst, `{"topic":`...)
	dst = avrobin.AppendJSONString(dst, r.Topic)
	dst = append(dst, `,"partition":`...)
	dst = strconv.AppendInt(dst, int64(r.Partition), 10)
	dst = append(dst, `,"offset":`...)
	dst = strconv.AppendInt(dst, r.Offset, 10)
	dst = append(dst, `,"timestamp":`...)
	dst = strconv.AppendInt(dst, r.Timestamp.UnixMilli(), 10)
	dst = append(dst, `,"key":`...)
	var err error
	if dst, err = avrobin.AppendJSON(dst, r.Key, r.KeySchema); err != nil {
		return dst, err
	}
	dst = append(dst, `,"value":`...)
	if dst, err = avrobin.AppendJSON(dst, r.Value, r.ValueSchema); err != nil {
		return dst, err
	}
	if s.headers && len(r.Headers) > 0 {
		dst = append(dst, `,"headers":{`...)
		for i, h := range r.Headers {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = avrobin.AppendJSONString(dst, h.Key)
			dst = append(dst, ':')
			dst = avrobin.AppendJSONString(dst, string(h.Value))
		}
		dst = append(dst, '}')
	}
	return append(dst, '}', '\n'), nil
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
	if len(s.out) == 0 {
		return nil
	}
	at, err := s.f.Seek(0, io.SeekCurrent)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	if _, err := s.f.Write(s.out); err != nil {
		s.f.Truncate(at)
		s.f.Seek(at, io.SeekStart)
		return fmt.Errorf("file sink: write %s: %w", s.path, err)
	}
	if s.fsync {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("file sink: fsync %s: %w", s.path, err)
		}
	}
	s.out = s.out[:0]
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
