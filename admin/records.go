package admin

import (
	"encoding/base64"
	"fmt"
	"time"
	"unicode/utf8"

	elog "github.com/eddy-cdc/eddy/log"
)

// RecordJSON is a record as the admin API and `eddy consume --format json`
// show it: one object a line. Keys and values are strings when they are
// valid UTF-8 and base64 otherwise, with key_encoding / value_encoding
// saying so; null stays null. Headers keep their order and repeats.
type RecordJSON struct {
	Topic         string       `json:"topic,omitempty"`
	Partition     int          `json:"partition"`
	Offset        int64        `json:"offset"`
	Timestamp     int64        `json:"timestamp"` // milliseconds since the epoch
	Key           *string      `json:"key"`
	Value         *string      `json:"value"`
	KeyEncoding   string       `json:"key_encoding,omitempty"`
	ValueEncoding string       `json:"value_encoding,omitempty"`
	Headers       []HeaderJSON `json:"headers,omitempty"`
}

// HeaderJSON is one record header.
type HeaderJSON struct {
	Key      string  `json:"key"`
	Value    *string `json:"value"`
	Encoding string  `json:"encoding,omitempty"`
}

func encodeBytes(b []byte) (*string, string) {
	if b == nil {
		return nil, ""
	}
	if utf8.Valid(b) {
		s := string(b)
		return &s, ""
	}
	s := base64.StdEncoding.EncodeToString(b)
	return &s, "base64"
}

func decodeBytes(s *string, enc, what string) ([]byte, error) {
	switch {
	case s == nil:
		return nil, nil
	case enc == "base64":
		b, err := base64.StdEncoding.DecodeString(*s)
		if err != nil {
			return nil, fmt.Errorf("%w: %s is not base64: %v", ErrBadRequest, what, err)
		}
		return b, nil
	case enc == "":
		return []byte(*s), nil
	}
	return nil, fmt.Errorf("%w: %s encoding %q (want base64 or none)", ErrBadRequest, what, enc)
}

// ToRecordJSON renders a record of topic/partition.
func ToRecordJSON(topic string, partition int, r *elog.Record) RecordJSON {
	j := RecordJSON{Topic: topic, Partition: partition, Offset: r.Offset, Timestamp: r.Timestamp.UnixMilli()}
	j.Key, j.KeyEncoding = encodeBytes(r.Key)
	j.Value, j.ValueEncoding = encodeBytes(r.Value)
	for _, h := range r.Headers {
		v, enc := encodeBytes(h.Value)
		j.Headers = append(j.Headers, HeaderJSON{Key: h.Key, Value: v, Encoding: enc})
	}
	return j
}

// Record turns the JSON form back into a record; a zero timestamp means now.
func (j *RecordJSON) Record() (elog.Record, error) {
	var r elog.Record
	var err error
	if r.Key, err = decodeBytes(j.Key, j.KeyEncoding, "key"); err != nil {
		return r, err
	}
	if r.Value, err = decodeBytes(j.Value, j.ValueEncoding, "value"); err != nil {
		return r, err
	}
	if j.Timestamp != 0 {
		r.Timestamp = time.UnixMilli(j.Timestamp)
	}
	for _, h := range j.Headers {
		v, err := decodeBytes(h.Value, h.Encoding, "header "+h.Key)
		if err != nil {
			return r, err
		}
		r.Headers = append(r.Headers, elog.Header{Key: h.Key, Value: v})
	}
	return r, nil
}
