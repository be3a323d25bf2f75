package postgres

import (
	"fmt"
	"slices"
	"time"

	"github.com/hamba/avro/v2"
	"github.com/jackc/pglogrepl"

	"github.com/eddy-cdc/eddy/connect"
	"github.com/eddy-cdc/eddy/internal/capture"
)

// Logical-decoding messages (pg_logical_emit_message) whose prefix the
// messages param names are captured as Debezium's PostgreSQL connector
// captures them: to topic <topic_prefix>.message, key {prefix}, value
// {op: "m", ts_ms, source, message: {prefix, content}}. Only transactional
// messages are: they commit or roll back with their transaction and take
// its place in commit order, which is what an outbox needs. A
// non-transactional one has no transaction to be ordered in, and is
// skipped (counted in the log).

// messageStream is the captured messages' topic and schemas.
type messageStream struct {
	prefixes    []string
	topic       string
	keySchema   avro.Schema
	valueSchema avro.Schema
	src         *table // the source block's table: none (empty names)
	skipped     int    // non-transactional messages passed over
}

func newMessageStream(topicPrefix string, prefixes []string) (*messageStream, error) {
	if len(prefixes) == 0 {
		return nil, nil
	}
	for _, p := range prefixes {
		if p == "" {
			return nil, fmt.Errorf("messages: an empty prefix")
		}
	}
	ns := capture.AvroName(topicPrefix) + ".message"
	key, err := avro.Parse(fmt.Sprintf(`{"type":"record","name":"Key","namespace":%q,"fields":[{"name":"prefix","type":"string"}]}`, ns))
	if err != nil {
		return nil, fmt.Errorf("message key schema: %w", err)
	}
	value, err := avro.Parse(fmt.Sprintf(`{"type":"record","name":"Envelope","namespace":%q,"fields":[
		{"name":"op","type":"string"},
		{"name":"ts_ms","type":["null","long"],"default":null},
		{"name":"source","type":%s},
		{"name":"message","type":{"type":"record","name":"Message","fields":[
			{"name":"prefix","type":"string"},
			{"name":"content","type":"bytes"}]}}]}`, ns, sourceSchema))
	if err != nil {
		return nil, fmt.Errorf("message value schema: %w", err)
	}
	return &messageStream{prefixes: prefixes, topic: topicPrefix + ".message",
		keySchema: key, valueSchema: value, src: &table{}}, nil
}

// message emits a captured message in the open transaction.
func (s *Source) message(out []connect.Record, m *pglogrepl.LogicalDecodingMessage) []connect.Record {
	ms := s.msgs
	if ms == nil || !slices.Contains(ms.prefixes, m.Prefix) {
		return out
	}
	if !m.Transactional || !s.txn.open {
		ms.skipped++
		if ms.skipped == 1 || ms.skipped%1000 == 0 {
			s.log.Warn("non-transactional logical-decoding messages are not captured: emit them with pg_logical_emit_message(true, ...)",
				"prefix", m.Prefix, "lsn", m.LSN, "skipped", ms.skipped)
		}
		return out
	}
	// Content aliases the replication message's buffer, reused for the next.
	content := append([]byte(nil), m.Content...)
	value := map[string]any{"op": "m", "ts_ms": time.Now().UnixMilli(), "source": s.txnSource(ms.src),
		"message": map[string]any{"prefix": m.Prefix, "content": content}}
	return s.append(out, connect.Record{Topic: ms.topic, Key: map[string]any{"prefix": m.Prefix}, KeySchema: ms.keySchema,
		Value: value, ValueSchema: ms.valueSchema, Timestamp: s.txn.commitTime})
}
