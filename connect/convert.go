package connect

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/hamba/avro/v2"

	"github.com/eddy-cdc/eddy/internal/avrobin"
	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/registry"
)

// Converter turns records into log bytes and back: Avro in the Confluent
// wire format with schemas in the registry (subjects <topic>-key and
// <topic>-value), or JSON. Reading detects the format of each key and value,
// so a sink reads what any producer wrote.
//
// A Converter belongs to one task; it is not safe for concurrent use.
type Converter struct {
	serde  *registry.Serde
	json   bool // write JSON rather than Avro
	codecs map[avro.Schema]*avrobin.Codec
	rd     avrobin.Reader // reused by each decode
	// lastKey and lastValue remember the subject and schema of the last
	// key and value written, and their id and codec: a source writes run
	// after run of one table's records, and asking the registry's cache
	// per record (a subject string built, a map hashed) cost as much as
	// the encoding.
	lastKey, lastValue lastEncoded
	// Level, when set, is the compatibility level given to the subjects
	// this converter registers first, unless they have their own.
	Level registry.Level
}

// lastEncoded is a subject's schema, written before, with its id and
// codec.
type lastEncoded struct {
	topic  string
	schema avro.Schema
	id     int
	codec  *avrobin.Codec
}

// NewConverter writes Avro through serde (format "avro") or JSON ("json").
func NewConverter(serde *registry.Serde, format string) *Converter {
	return &Converter{serde: serde, json: format == "json", codecs: map[avro.Schema]*avrobin.Codec{}}
}

// codec returns the compiled codec of a schema object.
func (c *Converter) codec(s avro.Schema) (*avrobin.Codec, error) {
	if k := c.codecs[s]; k != nil {
		return k, nil
	}
	k, err := avrobin.Compile(s)
	if err != nil {
		return nil, err
	}
	if len(c.codecs) >= 10_000 { // a source minting a schema per record
		clear(c.codecs)
	}
	c.codecs[s] = k
	return k, nil
}

// Encode fills out's key, value, headers and timestamp from r. The
// record's own bytes are appended to buf, which is returned grown.
func (c *Converter) Encode(ctx context.Context, r *Record, buf []byte, out *elog.Record) ([]byte, error) {
	var err error
	start := len(buf)
	if buf, err = c.encodeOne(ctx, r.Topic, "-key", &c.lastKey, r.KeySchema, r.Key, buf); err != nil {
		return buf, fmt.Errorf("serialize key: %w", err)
	}
	keyEnd := len(buf)
	if buf, err = c.encodeOne(ctx, r.Topic, "-value", &c.lastValue, r.ValueSchema, r.Value, buf); err != nil {
		return buf, fmt.Errorf("serialize value: %w", err)
	}
	// The slices are cut only now: buf may have moved while growing.
	out.Key, out.Value = nil, nil
	if r.Key != nil {
		out.Key = buf[start:keyEnd:keyEnd]
	}
	if r.Value != nil {
		out.Value = buf[keyEnd:len(buf):len(buf)]
	}
	out.Headers, out.Timestamp = r.Headers, r.Timestamp
	return buf, nil
}

func (c *Converter) encodeOne(ctx context.Context, topic, suffix string, last *lastEncoded, schema avro.Schema, v any, buf []byte) ([]byte, error) {
	if v == nil {
		return buf, nil
	}
	switch x := v.(type) {
	case []byte:
		return append(buf, x...), nil
	case string:
		if schema == nil {
			return append(buf, x...), nil
		}
	}
	if c.json || schema == nil {
		return avrobin.AppendJSON(buf, v, schema)
	}
	if last.schema != schema || last.topic != topic {
		if c.Level != "" {
			if err := c.serde.DefaultLevel(ctx, topic+suffix, c.Level); err != nil {
				return buf, err
			}
		}
		id, err := c.serde.Register(ctx, topic+suffix, schema)
		if err != nil {
			return buf, err
		}
		k, err := c.codec(schema)
		if err != nil {
			return buf, err
		}
		*last = lastEncoded{topic: topic, schema: schema, id: id, codec: k}
	}
	start := len(buf)
	buf = append(buf, 0)
	buf = binary.BigEndian.AppendUint32(buf, uint32(last.id))
	var err error
	if buf, err = last.codec.Encode(buf, v); err != nil {
		return buf[:start], fmt.Errorf("encode with schema %d: %w", last.id, err)
	}
	return buf, nil
}

// Decode reads a log record into a Record: Avro wire format (by its
// schema id), JSON, or else raw bytes (text as a string).
func (c *Converter) Decode(ctx context.Context, topic string, partition int, in *elog.Record) (Record, error) {
	return c.decode(ctx, topic, partition, in, false)
}

// DecodeKeepingAvro is Decode, except that an Avro key or value is left
// in its binary form as an *AvroValue, for a sink that reads them itself.
func (c *Converter) DecodeKeepingAvro(ctx context.Context, topic string, partition int, in *elog.Record) (Record, error) {
	return c.decode(ctx, topic, partition, in, true)
}

func (c *Converter) decode(ctx context.Context, topic string, partition int, in *elog.Record, keepAvro bool) (Record, error) {
	r := Record{Topic: topic, Partition: partition, Offset: in.Offset, Timestamp: in.Timestamp, Headers: in.Headers}
	var err error
	if r.Key, r.KeySchema, err = c.decodeOne(ctx, in.Key, keepAvro); err != nil {
		return r, fmt.Errorf("deserialize key: %w", err)
	}
	if r.Value, r.ValueSchema, err = c.decodeOne(ctx, in.Value, keepAvro); err != nil {
		return r, fmt.Errorf("deserialize value: %w", err)
	}
	return r, nil
}

func (c *Converter) decodeOne(ctx context.Context, data []byte, keepAvro bool) (any, avro.Schema, error) {
	switch {
	case data == nil:
		return nil, nil, nil
	case len(data) >= 5 && data[0] == 0:
		id, body, err := registry.SplitWire(data)
		if err != nil {
			return nil, nil, err
		}
		s, err := c.serde.Schema(ctx, id)
		if err != nil {
			return nil, nil, err
		}
		k, err := c.codec(s)
		if err != nil {
			return nil, nil, err
		}
		if keepAvro {
			return &AvroValue{Schema: s, ID: id, Body: body, codec: k}, s, nil
		}
		c.rd.Reset(body)
		v, err := k.Decode(&c.rd)
		if err != nil {
			return nil, nil, fmt.Errorf("decode with schema %d: %w", id, err)
		}
		return v, s, nil
	case json.Valid(data):
		// Numbers stay json.Number, so a long survives exactly and is
		// written back as it came.
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err == nil {
			return v, nil, nil
		}
	}
	if utf8.Valid(data) {
		return string(data), nil, nil
	}
	return append([]byte(nil), data...), nil, nil
}
