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

// protectWarnAt is the share of retention_protect_bytes from which the log
// warns that retention will soon delete what a sink has not consumed.
const protectWarnAt = 0.8

// Stages of what protect said last, so each is said once per episode.
const (
	protectQuiet   = iota // not holding anything back
	protectHolding        // holding segments for a reader
	protectNear           // and the partition is near the bound
)

// protect limits how many of the oldest closed segments retention drops
// (drop) to those every protected reader has consumed: segment i holds
// offsets below segs[i+1].base. Near the size bound it warns; past it, it
// drops them anyway, and says so. It keeps, for Stats, the bytes it holds
// back.
func (p *Partition) protect(segs []*segment, drop int) int {
	allowed := p.protectAllowed(segs, drop)
	var held int64
	for _, s := range segs[allowed:drop] {
		held += s.size.Load()
	}
	p.retentionHeld.Store(held)
	if held == 0 {
		p.protectStage = protectQuiet
	}
	return allowed
}

func (p *Partition) protectAllowed(segs []*segment, drop int) int {
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
	switch {
	case maxBytes > 0 && float64(total) >= protectWarnAt*float64(maxBytes) && p.protectStage < protectNear:
		p.protectStage = protectNear
		p.log.Warn("a sink is about to lose records: retention holds segments it has not consumed, and the partition nears retention_protect_bytes, past which retention deletes them and the sink stops with the gap; let the sink catch up, or raise the bound",
			"keep_from", keep, "bytes", total, "retention_protect_bytes", maxBytes)
	case p.protectStage < protectHolding:
		p.protectStage = protectHolding
		p.log.Warn("retention is holding segments a sink has not consumed (retention_protects: sinks)", "keep_from", keep, "bytes", total, "retention_protect_bytes", maxBytes)
	}
	return allowed
}
