package log

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Errors about topics.
var (
	ErrUnknownTopic  = errors.New("unknown topic")
	ErrTopicExists   = errors.New("topic already exists")
	ErrInvalidTopic  = errors.New("invalid topic")
	ErrInvalidConfig = errors.New("invalid topic config")
	ErrLocked        = errors.New("data directory is locked by another process")
)

const (
	lockFile      = ".lock"
	topicMetaFile = "topic.json"
	deletedSuffix = "-deleted"
)

type options struct {
	clock           func() time.Time
	logger          *slog.Logger
	defaults        TopicConfig
	cleanerInterval time.Duration
	guard           *retentionGuard
	disk            *disk
	archive         ArchivePolicies
	cache           *archiveCache
}

// Option configures Open.
type Option func(*options)

// WithClock sets the clock used for record timestamps, retention, segment
// age and session timeouts. Default: time.Now.
func WithClock(now func() time.Time) Option { return func(o *options) { o.clock = now } }

// WithLogger sets the logger. Default: slog.Default().
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithDefaults sets the config that topics created with zero fields take.
// Default: DefaultTopicConfig().
func WithDefaults(c TopicConfig) Option {
	return func(o *options) { o.defaults = c.withDefaults(DefaultTopicConfig()) }
}

// WithCleanerInterval sets how often retention and compaction run in the
// background; zero disables the background cleaner (tests call Clean).
// Default: 30s.
func WithCleanerInterval(d time.Duration) Option { return func(o *options) { o.cleanerInterval = d } }

// Log is Eddy's embedded log: a data directory of topics, each with
// partitions of segments. One process owns a directory at a time.
type Log struct {
	dir  string
	opts options
	lock *os.File

	mu     sync.RWMutex
	topics map[string]*Topic
	closed bool

	groups *GroupCoordinator

	stop chan struct{}
	wg   sync.WaitGroup
}

// Open opens (creating if needed) the log in dir, locks it against other
// processes, recovers every partition and starts the background cleaner and
// the fsync-interval syncer.
func Open(dir string, opts ...Option) (*Log, error) {
	o := options{clock: time.Now, logger: slog.Default(), defaults: DefaultTopicConfig(), cleanerInterval: 30 * time.Second, guard: &retentionGuard{}, disk: &disk{}}
	for _, opt := range opts {
		opt(&o)
	}
	if err := o.defaults.Validate(); err != nil {
		return nil, fmt.Errorf("open log %s: defaults: %w", dir, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("open log %s: %w", dir, err)
	}
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	l := &Log{dir: dir, opts: o, lock: lock, topics: map[string]*Topic{}, stop: make(chan struct{})}
	if err := l.loadTopics(); err != nil {
		l.closeTopics()
		unlockDir(lock)
		return nil, err
	}
	if l.groups, err = newGroupCoordinator(l); err != nil {
		l.closeTopics()
		unlockDir(lock)
		return nil, err
	}
	l.wg.Add(1)
	go l.background()
	return l, nil
}

// lockDir takes an exclusive flock on dir/.lock and writes the owner into it.
func lockDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log %s: lock: %w", dir, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		owner, _ := io.ReadAll(io.LimitReader(f, 512))
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open log %s: %w (owner: %s)", dir, ErrLocked, strings.TrimSpace(string(owner)))
		}
		return nil, fmt.Errorf("open log %s: lock: %w", dir, err)
	}
	host, _ := os.Hostname()
	exe, _ := os.Executable()
	owner := fmt.Sprintf("pid %d on %s (%s), since %s\n", os.Getpid(), host, filepath.Base(exe), time.Now().UTC().Format(time.RFC3339))
	if err := f.Truncate(0); err == nil {
		f.WriteAt([]byte(owner), 0)
	}
	return f, nil
}

func unlockDir(f *os.File) {
	f.Truncate(0)
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	f.Close()
}

// Dir is the data directory.
func (l *Log) Dir() string { return l.dir }

// Groups is the log's consumer-group coordinator.
func (l *Log) Groups() *GroupCoordinator { return l.groups }

type topicMeta struct {
	Name    string      `json:"name"`
	Config  TopicConfig `json:"config"`
	Created time.Time   `json:"created"`
}

// encode is topic.json's bytes (testdata/golden/topic.json is the
// contract).
func (m topicMeta) encode() []byte {
	b, _ := json.MarshalIndent(m, "", "  ")
	return b
}

func decodeTopicMeta(b []byte) (topicMeta, error) {
	var m topicMeta
	err := json.Unmarshal(b, &m)
	return m, err
}

func (l *Log) loadTopics() error {
	entries, err := os.ReadDir(l.dir)
	if err != nil {
		return fmt.Errorf("open log %s: %w", l.dir, err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		path := filepath.Join(l.dir, e.Name())
		if strings.HasSuffix(e.Name(), deletedSuffix) {
			// A deletion that did not finish: finish it.
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("open log %s: finish deleting %s: %w", l.dir, e.Name(), err)
			}
			continue
		}
		b, err := os.ReadFile(filepath.Join(path, topicMetaFile))
		if errors.Is(err, os.ErrNotExist) {
			// Created but not committed: CreateTopic writes the meta file last.
			l.opts.logger.Warn("removing topic directory without topic.json (unfinished create)", "dir", path)
			if err := os.RemoveAll(path); err != nil {
				return fmt.Errorf("open log %s: remove unfinished topic %s: %w", l.dir, e.Name(), err)
			}
			continue
		}
		if err != nil {
			return fmt.Errorf("open log %s: %w", l.dir, err)
		}
		m, err := decodeTopicMeta(b)
		if err != nil {
			return fmt.Errorf("open log %s: topic %s: %s: %w", l.dir, e.Name(), topicMetaFile, err)
		}
		m.Config = m.Config.withDefaults(l.opts.defaults)
		if err := m.Config.Validate(); err != nil {
			return fmt.Errorf("open log %s: topic %s: %w", l.dir, e.Name(), err)
		}
		t, err := openTopic(path, m, &l.opts, false)
		if err != nil {
			return fmt.Errorf("open log %s: %w", l.dir, err)
		}
		l.topics[m.Name] = t
	}
	return nil
}

// CreateTopic creates a topic; zero fields of cfg take the log's defaults.
func (l *Log) CreateTopic(name string, cfg TopicConfig) (*Topic, error) {
	if err := ValidateTopicName(name); err != nil {
		return nil, fmt.Errorf("create topic: %w", err)
	}
	cfg = cfg.withDefaults(l.opts.defaults)
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("create topic %s: %w: %w", name, ErrInvalidConfig, err)
	}
	return l.addTopic("create", topicMeta{Name: name, Config: cfg, Created: l.opts.clock().UTC()}, nil)
}

// addTopic makes the topic of m exist: its directory made afresh (by
// layout, when set, else empty partitions), opened, then topic.json
// written last and atomically, which is what makes it exist. op names
// the caller in errors.
func (l *Log) addTopic(op string, m topicMeta, layout func(path string) error) (*Topic, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, ErrClosed
	}
	if _, ok := l.topics[m.Name]; ok {
		return nil, fmt.Errorf("%s topic %s: %w", op, m.Name, ErrTopicExists)
	}
	path := filepath.Join(l.dir, m.Name)
	fail := func(err error) (*Topic, error) {
		os.RemoveAll(path)
		return nil, fmt.Errorf("%s topic %s: %w", op, m.Name, err)
	}
	if err := os.RemoveAll(path); err != nil {
		return nil, fmt.Errorf("%s topic %s: %w", op, m.Name, err)
	}
	if layout != nil {
		if err := layout(path); err != nil {
			return fail(err)
		}
	}
	t, err := openTopic(path, m, &l.opts, layout == nil)
	if err != nil {
		return fail(err)
	}
	if err := l.opts.disk.writeFileSync(filepath.Join(path, topicMetaFile), m.encode()); err != nil {
		t.close()
		return fail(err)
	}
	if err := l.opts.disk.syncDir(l.dir); err != nil {
		return nil, fmt.Errorf("%s topic %s: %w", op, m.Name, err)
	}
	l.topics[m.Name] = t
	return t, nil
}

// Topic returns an existing topic.
func (l *Log) Topic(name string) (*Topic, error) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	if l.closed {
		return nil, ErrClosed
	}
	t, ok := l.topics[name]
	if !ok {
		return nil, fmt.Errorf("%w: %s", ErrUnknownTopic, name)
	}
	return t, nil
}

// EnsureTopic returns the topic, creating it with cfg when it is absent.
func (l *Log) EnsureTopic(name string, cfg TopicConfig) (*Topic, error) {
	if t, err := l.Topic(name); err == nil {
		return t, nil
	}
	t, err := l.CreateTopic(name, cfg)
	if errors.Is(err, ErrTopicExists) {
		return l.Topic(name)
	}
	return t, err
}

// Topics lists topic names in order.
func (l *Log) Topics() []string {
	l.mu.RLock()
	defer l.mu.RUnlock()
	names := make([]string, 0, len(l.topics))
	for n := range l.topics {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// DeleteTopic removes a topic and its data. The directory is renamed away
// first, so a crash part-way leaves no half-deleted topic behind.
func (l *Log) DeleteTopic(name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, ok := l.topics[name]
	if !ok {
		return fmt.Errorf("delete topic: %w: %s", ErrUnknownTopic, name)
	}
	if t.meta.Config.Internal {
		return fmt.Errorf("delete topic %s: %w: it is internal to Eddy", name, ErrInvalidTopic)
	}
	delete(l.topics, name)
	t.close()
	gone := filepath.Join(l.dir, fmt.Sprintf("%s.%d%s", name, time.Now().UnixNano(), deletedSuffix))
	if err := l.opts.disk.rename(t.dir, gone); err != nil {
		return fmt.Errorf("delete topic %s: %w", name, err)
	}
	if err := l.opts.disk.syncDir(l.dir); err != nil {
		return fmt.Errorf("delete topic %s: %w", name, err)
	}
	if err := os.RemoveAll(gone); err != nil {
		return fmt.Errorf("delete topic %s: %w", name, err)
	}
	return nil
}

// background runs the cleaner and the fsync-interval syncer until Close.
func (l *Log) background() {
	defer l.wg.Done()
	syncTick := time.NewTicker(100 * time.Millisecond)
	defer syncTick.Stop()
	var clean <-chan time.Time
	if l.opts.cleanerInterval > 0 {
		t := time.NewTicker(l.opts.cleanerInterval)
		defer t.Stop()
		clean = t.C
	}
	lastSync := map[*Partition]time.Time{}
	for {
		select {
		case <-l.stop:
			return
		case now := <-syncTick.C:
			for _, p := range l.partitions() {
				if p.cfg.Fsync != FsyncInterval || now.Sub(lastSync[p]) < time.Duration(p.cfg.FlushInterval) {
					continue
				}
				lastSync[p] = now
				if err := p.sync(); err != nil {
					l.opts.logger.Error("periodic fsync failed", "partition", p.String(), "err", err)
				}
			}
		case <-clean:
			if err := l.Clean(context.Background()); err != nil {
				l.opts.logger.Error("log cleaner", "err", err)
			}
		}
	}
}

// Faults lists the partitions that refuse appends after a disk error, by
// topic and partition: what readiness and status report. A reopen of the
// log clears them.
func (l *Log) Faults() []PartitionFault {
	var fs []PartitionFault
	for _, p := range l.partitions() {
		if f, ok := p.fault(); ok {
			fs = append(fs, f)
		}
	}
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].Topic != fs[j].Topic {
			return fs[i].Topic < fs[j].Topic
		}
		return fs[i].Partition < fs[j].Partition
	})
	return fs
}

func (l *Log) partitions() []*Partition {
	l.mu.RLock()
	defer l.mu.RUnlock()
	var ps []*Partition
	for _, t := range l.topics {
		ps = append(ps, t.parts...)
	}
	return ps
}

// Close stops background work, syncs and closes every partition and releases
// the directory lock. It is safe to call more than once.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	l.mu.Unlock()
	close(l.stop)
	l.wg.Wait()
	l.groups.close()
	err := l.closeTopics()
	unlockDir(l.lock)
	return err
}

func (l *Log) closeTopics() error {
	var errs []error
	for _, t := range l.topics {
		errs = append(errs, t.close())
	}
	return errors.Join(errs...)
}
