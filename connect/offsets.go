package connect

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	elog "github.com/eddy-cdc/eddy/log"
)

// OffsetsTopic holds source connectors' positions, compacted, one key per
// connector (Kafka Connect's __connect_offsets, with the same key shape).
const OffsetsTopic = "__connect_offsets"

// SourceOffset is what a source connector has made durable.
type SourceOffset struct {
	// Position is the source position of the last record the log holds
	// durably and the source may forget.
	Position []byte `json:"position"`
	// Ends says, per topic and partition, the offset from which the log may
	// hold this connector's records that Position does not cover yet: the
	// end of its last stored batch there. A restart reads only from these
	// offsets to find records a crash left between the append and the
	// storing of their position.
	Ends map[string][]int64 `json:"ends"`
}

// offsetStore keeps source offsets in OffsetsTopic, read in full on open
// (the topic is compacted and holds one record per connector).
type offsetStore struct {
	topic *elog.Topic
	mu    sync.Mutex
	byKey map[string]SourceOffset
}

func offsetKey(connector string) []byte {
	b, _ := json.Marshal([]any{connector, map[string]any{"task": 0}})
	return b
}

func openOffsetStore(ctx context.Context, l *elog.Log) (*offsetStore, error) {
	cfg := elog.TopicConfig{Partitions: 1, Cleanup: elog.CleanupCompact, Fsync: elog.FsyncAlways}
	t, err := l.EnsureTopic(OffsetsTopic, cfg)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", OffsetsTopic, err)
	}
	s := &offsetStore{topic: t, byKey: map[string]SourceOffset{}}
	p, err := t.Partition(0)
	if err != nil {
		return nil, err
	}
	err = scanPartition(ctx, p, func(r elog.Record) error {
		if r.Value == nil {
			delete(s.byKey, string(r.Key))
			return nil
		}
		var so SourceOffset
		if err := json.Unmarshal(r.Value, &so); err != nil {
			return fmt.Errorf("read %s offset %d: %w", OffsetsTopic, r.Offset, err)
		}
		s.byKey[string(r.Key)] = so
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", OffsetsTopic, err)
	}
	return s, nil
}

// Get returns the stored offset of a connector.
func (s *offsetStore) Get(connector string) (SourceOffset, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	so, ok := s.byKey[string(offsetKey(connector))]
	return so, ok
}

// Put stores an offset durably (fsync) before returning.
func (s *offsetStore) Put(ctx context.Context, connector string, so SourceOffset) error {
	so.Ends = cloneEnds(so.Ends) // the caller keeps changing its map
	v, err := json.Marshal(so)
	if err != nil {
		return err
	}
	key := offsetKey(connector)
	if _, err := s.topic.Produce(ctx, []elog.Record{{Key: key, Value: v}}); err != nil {
		return fmt.Errorf("store offset of %s: %w", connector, err)
	}
	s.mu.Lock()
	s.byKey[string(key)] = so
	s.mu.Unlock()
	return nil
}

// Delete forgets a connector's offset (a tombstone), durably.
func (s *offsetStore) Delete(ctx context.Context, connector string) error {
	key := offsetKey(connector)
	if _, err := s.topic.Produce(ctx, []elog.Record{{Key: key}}); err != nil {
		return fmt.Errorf("delete offset of %s: %w", connector, err)
	}
	s.mu.Lock()
	delete(s.byKey, string(key))
	s.mu.Unlock()
	return nil
}
