package log

import (
	"sync"
)

// RetentionGuard says, for a partition, the first offset a reader still
// needs (ok false: none to protect). Retention deletes a segment only when
// every offset in it is below that, until the partition's size passes the
// guard's bound.
type RetentionGuard func(tp TopicPartition) (keepFrom int64, ok bool)

// retentionGuard is the log's guard, shared by its partitions; set once
// the readers it protects (a worker's sink connectors) are known.
type retentionGuard struct {
	mu       sync.RWMutex
	fn       RetentionGuard
	maxBytes int64 // past this size a partition's retention deletes anyway; 0: no bound
}

func (g *retentionGuard) get() (RetentionGuard, int64) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.fn, g.maxBytes
}

// ProtectRetention makes retention keep what fn says readers still need,
// for each partition until it holds more than maxBytes (0: always). Nil fn
// protects nothing.
func (l *Log) ProtectRetention(fn RetentionGuard, maxBytes int64) {
	l.opts.guard.mu.Lock()
	defer l.opts.guard.mu.Unlock()
	l.opts.guard.fn, l.opts.guard.maxBytes = fn, maxBytes
}

// protect limits how many of the oldest closed segments retention drops
// (drop) to those every protected reader has consumed: segment i holds
// offsets below segs[i+1].base. Past the size bound it drops them anyway,
// and says so.
func (p *Partition) protect(segs []*segment, drop int) int {
	if p.guard == nil || drop == 0 {
		return drop
	}
	fn, maxBytes := p.guard.get()
	if fn == nil {
		return drop
	}
	keep, ok := fn(TopicPartition{Topic: p.topic, Partition: p.id})
	if !ok {
		return drop
	}
	allowed := drop
	for allowed > 0 && segs[allowed].base > keep {
		allowed--
	}
	if allowed == drop {
		return drop
	}
	var total int64
	for _, s := range segs {
		total += s.size.Load()
	}
	if maxBytes > 0 && total > maxBytes {
		p.log.Warn("retention deletes records a sink has not consumed: the partition is past retention_protect_bytes, and that sink will stop with the gap",
			"keep_from", keep, "log_start_offset", segs[drop].base, "bytes", total, "retention_protect_bytes", maxBytes)
		return drop
	}
	if !p.protectWarned {
		p.protectWarned = true
		p.log.Warn("retention is holding segments a sink has not consumed (retention_protects: sinks)", "keep_from", keep, "bytes", total, "retention_protect_bytes", maxBytes)
	}
	return allowed
}
