package connect

import (
	"context"
	"fmt"
	"sync"

	elog "github.com/eddy-cdc/eddy/log"
)

// HistoryTopicPrefix begins the name of each connector's history topic.
const HistoryTopicPrefix = "__eddy_history."

// History is a compacted topic of the log that a source keeps for itself:
// state it must rebuild on restart which the upstream cannot give back
// (a MySQL source's schema history). It lives beside the connector's
// topics and is kept forever; only compaction shrinks it.
type History interface {
	// Read calls fn with every live record, oldest first; a key put
	// several times may come more than once (compaction is lazy), the
	// newest last.
	Read(ctx context.Context, fn func(key, value []byte) error) error
	// Put appends records, each a key and its value (nil: the key is
	// deleted), and returns once they are durable.
	Put(ctx context.Context, recs []HistoryRecord) error
}

// HistoryRecord is one record of a History.
type HistoryRecord struct {
	Key, Value []byte
}

// logHistory is a History on a topic of Eddy's log.
type logHistory struct {
	mu    sync.Mutex
	topic *elog.Topic
}

// OpenHistory opens (creating it when absent) connector's history topic
// in l: one partition, compacted, kept forever, fsynced on every append.
func OpenHistory(l *elog.Log, connector string) (History, error) {
	name := HistoryTopicPrefix + connector
	if err := elog.ValidateTopicName(name); err != nil {
		return nil, fmt.Errorf("history of connector %s: %w", connector, err)
	}
	t, err := l.EnsureTopic(name, elog.TopicConfig{Partitions: 1, Cleanup: elog.CleanupCompact, Retention: -1, RetentionBytes: -1,
		Fsync: elog.FsyncAlways, Internal: true, Description: "state connector " + connector + " rebuilds on restart"})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	return &logHistory{topic: t}, nil
}

func (h *logHistory) Read(ctx context.Context, fn func(key, value []byte) error) error {
	p, err := h.topic.Partition(0)
	if err != nil {
		return err
	}
	return scanPartition(ctx, p, func(r elog.Record) error { return fn(r.Key, r.Value) })
}

func (h *logHistory) Put(ctx context.Context, recs []HistoryRecord) error {
	if len(recs) == 0 {
		return nil
	}
	out := make([]elog.Record, len(recs))
	for i, r := range recs {
		out[i] = elog.Record{Key: r.Key, Value: r.Value}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, err := h.topic.Produce(ctx, out); err != nil {
		return fmt.Errorf("append to %s: %w", h.topic.Name(), err)
	}
	return nil
}

// scanPartition calls fn with every record of p from its start to its
// high watermark as it was when the scan began.
func scanPartition(ctx context.Context, p *elog.Partition, fn func(elog.Record) error) error {
	off, end := p.LogStartOffset(), p.HighWatermark()
	var recs []elog.Record
	for off < end {
		if err := ctx.Err(); err != nil {
			return err
		}
		res, err := p.Fetch(off, 1<<20)
		if err != nil {
			return fmt.Errorf("read %s at %d: %w", p, off, err)
		}
		if recs, err = elog.DecodeBatches(recs[:0], res.Data, off); err != nil {
			return fmt.Errorf("read %s at %d: %w", p, off, err)
		}
		for _, r := range recs {
			if r.Offset >= end {
				return nil
			}
			if err := fn(r); err != nil {
				return err
			}
		}
		if res.NextOffset <= off {
			break
		}
		off = res.NextOffset
	}
	return nil
}
