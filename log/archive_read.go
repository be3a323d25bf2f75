package log

import (
	"container/list"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// archiveChunk is the unit the archive is read and cached in: ranged
// GETs of this size, aligned.
const archiveChunk = 4 << 20

// archiveReadTimeout bounds one read of the store (a run of chunks).
const archiveReadTimeout = 30 * time.Second

// archiveCache keeps the chunks of archived objects read last, up to a
// size bound, for all partitions of a log.
type archiveCache struct {
	mu    sync.Mutex
	max   int64
	used  int64
	lru   *list.List // of *cachedChunk, most recent first
	items map[chunkKey]*list.Element
	// Reads of the store under way (a chunk asked for, or read ahead), so
	// a chunk is read once however many wait for it.
	inflight map[chunkKey]*chunkRead
	run      int64 // chunks read in one request (aligned runs of them)

	hits, misses, readBytes atomic.Int64
}

// chunkRead is one read of a chunk from the store.
type chunkRead struct {
	done chan struct{}
	data []byte
	err  error
}

type chunkKey struct {
	key string
	n   int64
}

type cachedChunk struct {
	k    chunkKey
	data []byte
}

// archiveRun is how many chunks are read in one request, at most: a
// store answers a few large requests faster than many small ones. A
// reader of a run has the next one under way, so that a replay overlaps
// its reads of the store with its own work.
const archiveRun = 4

func newArchiveCache(bound int64) *archiveCache {
	return &archiveCache{max: bound, lru: list.New(), items: map[chunkKey]*list.Element{}, inflight: map[chunkKey]*chunkRead{},
		run: max(1, min(archiveRun, bound/archiveChunk/4))}
}

func (c *archiveCache) get(k chunkKey) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.items[k]
	if !ok {
		return nil, false
	}
	c.lru.MoveToFront(e)
	return e.Value.(*cachedChunk).data, true
}

func (c *archiveCache) put(k chunkKey, data []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.items[k]; ok || int64(len(data)) > c.max {
		return
	}
	c.items[k] = c.lru.PushFront(&cachedChunk{k, data})
	c.used += int64(len(data))
	for c.used > c.max {
		e := c.lru.Back()
		ch := e.Value.(*cachedChunk)
		c.lru.Remove(e)
		delete(c.items, ch.k)
		c.used -= int64(len(ch.data))
	}
}

// ArchiveCacheStats are the log's archive reads: chunks found in the
// cache and read from the store, and the bytes read from the store.
type ArchiveCacheStats struct {
	Hits, Misses, ReadBytes, CachedBytes int64
}

// ArchiveCacheStats reports the archive cache; zero when nothing is
// archived.
func (l *Log) ArchiveCacheStats() ArchiveCacheStats {
	c := l.opts.cache
	if c == nil {
		return ArchiveCacheStats{}
	}
	c.mu.Lock()
	used := c.used
	c.mu.Unlock()
	return ArchiveCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), ReadBytes: c.readBytes.Load(), CachedBytes: used}
}

// readRange appends to dst the bytes [off, off+n) of the object key of
// size bytes, through the cache.
func (c *archiveCache) readRange(store ArchiveStore, dst []byte, key string, size, off, n int64) ([]byte, error) {
	end := min(off+n, size)
	for off < end {
		k := chunkKey{key, off / archiveChunk}
		data, err := c.chunk(store, k, size)
		if err != nil {
			return dst, fmt.Errorf("read %s from %s: %w", key, store, err)
		}
		from := off - k.n*archiveChunk
		to := min(int64(len(data)), end-k.n*archiveChunk)
		dst = append(dst, data[from:to]...)
		off += to - from
	}
	return dst, nil
}

// chunk returns chunk k of an object of size bytes: from the cache, else
// from the read of it under way, else read now; and has the next run of
// chunks read ahead. Chunks are read c.run at a time, aligned, one
// request per run, each served as soon as its bytes are in.
func (c *archiveCache) chunk(store ArchiveStore, k chunkKey, size int64) ([]byte, error) {
	next := (k.n/c.run + 1) * c.run
	if data, ok := c.get(k); ok {
		c.hits.Add(1)
		c.startRun(store, k.key, size, next)
		return data, nil
	}
	r := c.startRun(store, k.key, size, k.n)
	c.startRun(store, k.key, size, next)
	if r == nil { // cached meanwhile, or under way
		if data, ok := c.get(k); ok {
			c.hits.Add(1)
			return data, nil
		}
		c.mu.Lock()
		r = c.inflight[k]
		c.mu.Unlock()
		if r == nil { // read and evicted at once: read it alone
			return c.readOne(store, k, size)
		}
	}
	<-r.done
	return r.data, r.err
}

// startRun begins, in the background, one read of the chunks from
// chunk from to the end of its run that are neither cached nor under
// way, and returns chunk from's read: nil when that chunk needs none.
func (c *archiveCache) startRun(store ArchiveStore, key string, size int64, from int64) *chunkRead {
	last := (size - 1) / archiveChunk
	end := min((from/c.run+1)*c.run-1, last)
	if from > last {
		return nil
	}
	c.mu.Lock()
	var reads []*chunkRead
	first := from
	for j := from; j <= end; j++ {
		k := chunkKey{key, j}
		_, cached := c.items[k]
		_, busy := c.inflight[k]
		if cached || busy {
			if len(reads) == 0 {
				first = j + 1
				continue
			}
			break // the rest is read by whoever reads this one
		}
		r := &chunkRead{done: make(chan struct{})}
		c.inflight[k] = r
		reads = append(reads, r)
	}
	c.mu.Unlock()
	if len(reads) == 0 {
		return nil
	}
	go c.readRun(store, key, size, first, reads)
	if first != from {
		return nil
	}
	return reads[0]
}

// readRun reads the chunks from chunk first on, one per read, in one
// request, and serves each as soon as it is in.
func (c *archiveCache) readRun(store ArchiveStore, key string, size, first int64, reads []*chunkRead) {
	off := first * archiveChunk
	n := min(int64(len(reads))*archiveChunk, size-off)
	ctx, cancel := context.WithTimeout(context.Background(), archiveReadTimeout)
	defer cancel()
	body, err := store.OpenRange(ctx, key, off, n)
	if err == nil {
		defer body.Close()
	}
	for i, r := range reads {
		k := chunkKey{key, first + int64(i)}
		if err == nil {
			c.misses.Add(1)
			data := make([]byte, min(archiveChunk, size-k.n*archiveChunk))
			var got int
			got, err = io.ReadFull(body, data)
			c.readBytes.Add(int64(got))
			if err == nil {
				r.data = data
				c.put(k, data)
			} else {
				err = fmt.Errorf("read %d bytes at %d: %w", len(data), k.n*archiveChunk, err)
			}
		}
		r.err = err
		c.mu.Lock()
		delete(c.inflight, k)
		c.mu.Unlock()
		close(r.done)
	}
}

// prefetch starts reading, in the background, the first run of chunks
// of an object of size bytes that are not cached or under way.
func (c *archiveCache) prefetch(store ArchiveStore, key string, size int64) {
	c.startRun(store, key, size, 0)
}

// readOne reads chunk k alone, uncached.
func (c *archiveCache) readOne(store ArchiveStore, k chunkKey, size int64) ([]byte, error) {
	c.misses.Add(1)
	data := make([]byte, min(archiveChunk, size-k.n*archiveChunk))
	ctx, cancel := context.WithTimeout(context.Background(), archiveReadTimeout)
	defer cancel()
	got, err := store.ReadAt(ctx, k.key, data, k.n*archiveChunk)
	c.readBytes.Add(int64(got))
	if err != nil && !(errors.Is(err, io.EOF) && got == len(data)) {
		return nil, err
	}
	return data, nil
}

// fetchArchived reads, from the archived segment holding offset, the
// batches from the one holding it, at most maxBytes (one batch at
// least), each CRC-checked. With no bytes it returns the offset where the
// next segment starts.
func (p *Partition) fetchArchived(buf []byte, offset int64, maxBytes int) ([]byte, int64, error) {
	m := p.manifest.Load()
	seg, ok := m.find(offset)
	if !ok {
		return nil, p.logStart.Load(), nil // a gap below the local start (deleted before it was archived)
	}
	pol, ok := p.archivePolicy()
	if !ok || p.cache == nil {
		return nil, 0, fmt.Errorf("offset %d is archived (segment %s), but no archive store is configured for topic %s", offset, seg.Key, p.topic)
	}
	store, c := pol.Store, p.cache
	fail := func(err error) ([]byte, int64, error) {
		return nil, 0, fmt.Errorf("archive %s: segment %s: %w", store, seg.Key, err)
	}
	// The index entry at or before offset, by a binary search that reads
	// only the entries it looks at (through the cache).
	pos := int64(0)
	var entry []byte
	var ierr error
	readEntry := func(i int) []byte {
		entry, ierr = c.readRange(store, entry[:0], indexKey(seg.Key), seg.IndexSize, int64(i)*indexEntrySize, indexEntrySize)
		if ierr == nil && len(entry) < indexEntrySize {
			ierr = fmt.Errorf("index entry %d: %w", i, io.ErrUnexpectedEOF)
		}
		return entry
	}
	i := sort.Search(int(seg.IndexSize/indexEntrySize), func(i int) bool {
		e := readEntry(i)
		return ierr != nil || seg.Base+int64(binary.BigEndian.Uint32(e)) > offset
	}) - 1
	if i >= 0 && ierr == nil {
		pos = int64(binary.BigEndian.Uint32(readEntry(i)[4:]))
	}
	if ierr != nil {
		return fail(ierr)
	}
	var hdr []byte
	var h BatchHeader
	for {
		if pos >= seg.Size {
			return nil, seg.Last + 1, nil
		}
		var err error
		if hdr, err = c.readRange(store, hdr[:0], seg.Key, seg.Size, pos, BatchHeaderSize); err != nil {
			return fail(err)
		}
		if h, err = ParseBatchHeader(hdr); err != nil {
			return fail(fmt.Errorf("at %d: %w", pos, err))
		}
		if h.LastOffset() >= offset {
			break
		}
		pos += int64(h.Size())
	}
	data, err := c.readRange(store, buf[:0], seg.Key, seg.Size, pos, int64(max(maxBytes, h.Size())))
	if err != nil {
		return fail(err)
	}
	end, next := 0, offset
	for end < len(data) {
		bh, err := ParseBatchHeader(data[end:])
		if err != nil || end+bh.Size() > len(data) {
			break
		}
		if err := VerifyBatch(&bh, data[end:]); err != nil {
			if end == 0 {
				return fail(fmt.Errorf("at %d: %w", pos, err))
			}
			break // the good ones; the next fetch reports this one
		}
		end += bh.Size()
		next = bh.LastOffset() + 1
	}
	if end == 0 {
		return fail(fmt.Errorf("at %d: a torn batch", pos))
	}
	// Near the segment's end, a sequential reader goes on with the next
	// one: start reading its index and first chunks now.
	if read := pos + int64(end); seg.Size-read <= c.run*archiveChunk {
		if nseg, ok := m.find(seg.Last + 1); ok && nseg.Size > 0 {
			c.prefetch(store, indexKey(nseg.Key), nseg.IndexSize)
			c.prefetch(store, nseg.Key, nseg.Size)
		}
	}
	return data[:end], next, nil
}

func indexKey(logKey string) string { return logKey[:len(logKey)-len(logSuffix)] + indexSuffix }
