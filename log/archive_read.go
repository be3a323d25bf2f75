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

// archiveReadTimeout bounds one ranged read of the store.
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
	ahead    int64 // chunks read ahead of a sequential reader

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

// archiveReadAhead is how many chunks a reader of chunk n has read ahead
// (n+1...), at most, so that a replay overlaps its reads of the store
// with its own work and reads several ranges at once.
const archiveReadAhead = 4

func newArchiveCache(max int64) *archiveCache {
	return &archiveCache{max: max, lru: list.New(), items: map[chunkKey]*list.Element{}, inflight: map[chunkKey]*chunkRead{},
		ahead: min(archiveReadAhead, max/archiveChunk/2)}
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
// from the read of it under way, else read now; and starts reading the
// chunks after it that are not cached yet.
func (c *archiveCache) chunk(store ArchiveStore, k chunkKey, size int64) ([]byte, error) {
	last := (size - 1) / archiveChunk
	for j := k.n + 1; j <= min(k.n+c.ahead, last); j++ {
		c.start(store, chunkKey{k.key, j}, size, true)
	}
	if data, ok := c.get(k); ok {
		c.hits.Add(1)
		return data, nil
	}
	r := c.start(store, k, size, false)
	<-r.done
	return r.data, r.err
}

// prefetch starts reading, in the background, the first n chunks of an
// object of size bytes that are not cached or under way.
func (c *archiveCache) prefetch(store ArchiveStore, key string, size int64, n int64) {
	for j := int64(0); j < n && j*archiveChunk < size; j++ {
		c.start(store, chunkKey{key, j}, size, true)
	}
}

// start begins the read of chunk k unless it is under way, in this
// goroutine or (reading ahead, and only when not cached) in the
// background, and returns it; nil for a chunk read ahead that is cached.
func (c *archiveCache) start(store ArchiveStore, k chunkKey, size int64, background bool) *chunkRead {
	c.mu.Lock()
	if r, ok := c.inflight[k]; ok {
		c.mu.Unlock()
		return r
	}
	if _, ok := c.items[k]; ok && background {
		c.mu.Unlock()
		return nil // read ahead, and here already
	}
	r := &chunkRead{done: make(chan struct{})}
	c.inflight[k] = r
	c.mu.Unlock()
	read := func() {
		c.misses.Add(1)
		start := k.n * archiveChunk
		data := make([]byte, min(archiveChunk, size-start))
		ctx, cancel := context.WithTimeout(context.Background(), archiveReadTimeout)
		got, err := store.ReadAt(ctx, k.key, data, start)
		cancel()
		c.readBytes.Add(int64(got))
		if err != nil && !(errors.Is(err, io.EOF) && got == len(data)) {
			r.err = err
		} else {
			r.data = data
			c.put(k, data)
		}
		c.mu.Lock()
		delete(c.inflight, k)
		c.mu.Unlock()
		close(r.done)
	}
	if background {
		go read()
	} else {
		read()
	}
	return r
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
	if read := pos + int64(end); seg.Size-read <= c.ahead*archiveChunk {
		if nseg, ok := m.find(seg.Last + 1); ok && nseg.Size > 0 {
			c.prefetch(store, indexKey(nseg.Key), nseg.IndexSize, 1)
			c.prefetch(store, nseg.Key, nseg.Size, c.ahead)
		}
	}
	return data[:end], next, nil
}

func indexKey(logKey string) string { return logKey[:len(logKey)-len(logSuffix)] + indexSuffix }
