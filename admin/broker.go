package admin

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/eddy-cdc/eddy/connect"
	elog "github.com/eddy-cdc/eddy/log"
)

// TopicInfo describes a topic: its config and each partition's offsets.
type TopicInfo struct {
	Name       string                `json:"name"`
	Config     elog.TopicConfig      `json:"config"`
	Created    time.Time             `json:"created"`
	Partitions []elog.PartitionStats `json:"partitions"`
}

// Broker is what the CLI and the admin API do with a log, whether it is
// opened in this process (LocalBroker) or served by `eddy run` (Client).
// Errors wrap the log package's sentinels in both cases, so callers branch
// on them the same way.
type Broker interface {
	CreateTopic(ctx context.Context, name string, cfg elog.TopicConfig) (TopicInfo, error)
	ListTopics(ctx context.Context) ([]TopicInfo, error)
	DescribeTopic(ctx context.Context, name string) (TopicInfo, error)
	DeleteTopic(ctx context.Context, name string) error
	// RestoreTopic rebuilds a topic absent from the log from the archive
	// in the named store (one of eddy.yaml's stores:).
	RestoreTopic(ctx context.Context, name, store string) (TopicInfo, error)
	// Produce partitions and appends recs, returning once all are durable.
	Produce(ctx context.Context, topic string, recs []elog.Record) ([]elog.Produced, error)
	// Fetch returns raw, CRC-checked batches from offset; with wait > 0 it
	// long-polls at the high watermark for up to wait.
	Fetch(ctx context.Context, topic string, partition int, offset int64, maxBytes int, wait time.Duration) (elog.FetchResult, error)
	Resolve(ctx context.Context, topic string, partition int, spec elog.OffsetSpec) (int64, error)

	JoinGroup(ctx context.Context, group string, req elog.JoinRequest) (elog.Assignment, error)
	Heartbeat(ctx context.Context, group, member string, generation int) error
	LeaveGroup(ctx context.Context, group, member string) error
	Commit(ctx context.Context, group, member string, generation int, offsets map[elog.TopicPartition]int64) error
	Committed(ctx context.Context, group string) (map[elog.TopicPartition]elog.OffsetCommit, error)
	ListGroups(ctx context.Context) ([]string, error)
	DescribeGroup(ctx context.Context, group string) (elog.GroupDescription, error)
	ResetGroup(ctx context.Context, group, topic string, spec elog.OffsetSpec) (map[elog.TopicPartition]int64, error)

	Close() error
}

// LocalBroker serves a Broker from a log opened in this process.
type LocalBroker struct {
	Log *elog.Log
	// Stores are the archive stores by name, for RestoreTopic: the ones
	// the log's archive policies name.
	Stores map[string]elog.ArchiveStore
	own    bool
}

// ArchiveCacheStats reports the log's reads of archived segments.
func (b *LocalBroker) ArchiveCacheStats() elog.ArchiveCacheStats { return b.Log.ArchiveCacheStats() }

// OpenLocal opens the log in dir (taking its lock) as a Broker.
func OpenLocal(dir string, opts ...elog.Option) (*LocalBroker, error) {
	l, err := elog.Open(dir, opts...)
	if err != nil {
		return nil, err
	}
	return &LocalBroker{Log: l, own: true}, nil
}

// NewLocal wraps an open log; Close leaves it open.
func NewLocal(l *elog.Log) *LocalBroker { return &LocalBroker{Log: l} }

func topicInfo(t *elog.Topic) TopicInfo {
	return TopicInfo{Name: t.Name(), Config: t.Config(), Created: t.Created(), Partitions: t.Stats()}
}

func (b *LocalBroker) CreateTopic(_ context.Context, name string, cfg elog.TopicConfig) (TopicInfo, error) {
	t, err := b.Log.CreateTopic(name, cfg)
	if err != nil {
		return TopicInfo{}, err
	}
	return topicInfo(t), nil
}

func (b *LocalBroker) ListTopics(context.Context) ([]TopicInfo, error) {
	var out []TopicInfo
	for _, n := range b.Log.Topics() {
		if t, err := b.Log.Topic(n); err == nil {
			out = append(out, topicInfo(t))
		}
	}
	return out, nil
}

func (b *LocalBroker) DescribeTopic(_ context.Context, name string) (TopicInfo, error) {
	t, err := b.Log.Topic(name)
	if err != nil {
		return TopicInfo{}, err
	}
	return topicInfo(t), nil
}

func (b *LocalBroker) DeleteTopic(_ context.Context, name string) error {
	return b.Log.DeleteTopic(name)
}

func (b *LocalBroker) RestoreTopic(ctx context.Context, name, store string) (TopicInfo, error) {
	st := b.Stores[store]
	if st == nil {
		return TopicInfo{}, fmt.Errorf("restore topic %s: %w %q (the config's stores: %s)", name, ErrUnknownStore, store, storeNames(b.Stores))
	}
	t, err := b.Log.RestoreTopic(ctx, name, st)
	if err != nil {
		return TopicInfo{}, err
	}
	return topicInfo(t), nil
}

func storeNames(stores map[string]elog.ArchiveStore) string {
	if len(stores) == 0 {
		return "none"
	}
	names := slices.Sorted(maps.Keys(stores))
	return strings.Join(names, ", ")
}

func (b *LocalBroker) Produce(ctx context.Context, topic string, recs []elog.Record) ([]elog.Produced, error) {
	t, err := b.Log.Topic(topic)
	if err != nil {
		return nil, err
	}
	return t.Produce(ctx, recs)
}

func (b *LocalBroker) partition(topic string, partition int) (*elog.Partition, error) {
	t, err := b.Log.Topic(topic)
	if err != nil {
		return nil, err
	}
	return t.Partition(partition)
}

func (b *LocalBroker) Fetch(ctx context.Context, topic string, partition int, offset int64, maxBytes int, wait time.Duration) (elog.FetchResult, error) {
	p, err := b.partition(topic, partition)
	if err != nil {
		return elog.FetchResult{}, err
	}
	if wait > 0 && offset >= p.HighWatermark() {
		wctx, cancel := context.WithTimeout(ctx, wait)
		err := p.Wait(wctx, offset)
		cancel()
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return elog.FetchResult{}, err
		}
	}
	return p.Fetch(offset, maxBytes)
}

func (b *LocalBroker) Resolve(_ context.Context, topic string, partition int, spec elog.OffsetSpec) (int64, error) {
	p, err := b.partition(topic, partition)
	if err != nil {
		return 0, err
	}
	return p.Resolve(spec)
}

func (b *LocalBroker) JoinGroup(ctx context.Context, group string, req elog.JoinRequest) (elog.Assignment, error) {
	return b.Log.Groups().Join(ctx, group, req)
}

func (b *LocalBroker) Heartbeat(_ context.Context, group, member string, generation int) error {
	return b.Log.Groups().Heartbeat(group, member, generation)
}

func (b *LocalBroker) LeaveGroup(_ context.Context, group, member string) error {
	return b.Log.Groups().Leave(group, member)
}

func (b *LocalBroker) Commit(ctx context.Context, group, member string, generation int, offsets map[elog.TopicPartition]int64) error {
	return b.Log.Groups().Commit(ctx, group, member, generation, offsets)
}

func (b *LocalBroker) Committed(_ context.Context, group string) (map[elog.TopicPartition]elog.OffsetCommit, error) {
	return b.Log.Groups().Committed(group), nil
}

func (b *LocalBroker) ListGroups(context.Context) ([]string, error) {
	return b.Log.Groups().List(), nil
}

func (b *LocalBroker) DescribeGroup(_ context.Context, group string) (elog.GroupDescription, error) {
	return b.Log.Groups().Describe(group)
}

func (b *LocalBroker) ResetGroup(ctx context.Context, group, topic string, spec elog.OffsetSpec) (map[elog.TopicPartition]int64, error) {
	return b.Log.Groups().ResetOffsets(ctx, group, topic, spec)
}

// Close closes the log if OpenLocal opened it.
func (b *LocalBroker) Close() error {
	if b.own {
		return b.Log.Close()
	}
	return nil
}

// errorCodes maps the log's sentinel errors to the admin API's HTTP status
// and error code, and back again in the client.
var errorCodes = []struct {
	err    error
	status int
	code   string
}{
	{elog.ErrUnknownTopic, 404, "unknown_topic"},
	{elog.ErrUnknownGroup, 404, "unknown_group"},
	{elog.ErrUnknownMember, 404, "unknown_member"},
	{elog.ErrTopicExists, 409, "topic_exists"},
	{ErrUnknownStore, 404, "unknown_store"},
	{elog.ErrRebalanceInProgress, 409, "rebalance_in_progress"},
	{elog.ErrIllegalGeneration, 409, "illegal_generation"},
	{elog.ErrNotAssigned, 409, "not_assigned"},
	{elog.ErrGroupActive, 409, "group_active"},
	{elog.ErrOffsetOutOfRange, 416, "offset_out_of_range"},
	{elog.ErrRecordTooLarge, 413, "record_too_large"},
	{elog.ErrBatchTooLarge, 413, "batch_too_large"},
	{elog.ErrInvalidTopic, 400, "invalid_topic"},
	{elog.ErrInvalidConfig, 400, "invalid_config"},
	{elog.ErrInvalidRecord, 400, "invalid_record"},
	{elog.ErrCorruptBatch, 500, "corrupt_batch"},
	{elog.ErrClosed, 503, "closed"},
	{ErrUnauthorized, 401, "unauthorized"},
	{ErrForbidden, 403, "forbidden"},
	{connect.ErrUnknownConnector, 404, "unknown_connector"},
	{ErrUnknownPlugin, 404, "unknown_plugin"},
	{connect.ErrConnectorState, 409, "connector_state"},
	{connect.ErrHoldsUpstream, 409, "holds_upstream"},
}

// ErrUnauthorized is a request without credentials the admin API accepts;
// ErrForbidden one whose credentials' role may not do what it asks.
var (
	ErrUnauthorized = errors.New("unauthorized")
	ErrForbidden    = errors.New("forbidden")
)

// ErrUnknownStore is a store name eddy.yaml does not declare.
var ErrUnknownStore = errors.New("no archive store named")

// ErrBadRequest is a request the admin API could not read.
var ErrBadRequest = errors.New("bad request")

func errorStatus(err error) (int, string) {
	for _, e := range errorCodes {
		if errors.Is(err, e.err) {
			return e.status, e.code
		}
	}
	if errors.Is(err, ErrBadRequest) {
		return 400, "bad_request"
	}
	return 500, "internal"
}

func errorFromCode(code, msg string) error {
	for _, e := range errorCodes {
		if e.code == code {
			return fmt.Errorf("%w: %s", e.err, msg)
		}
	}
	if code == "bad_request" {
		return fmt.Errorf("%w: %s", ErrBadRequest, msg)
	}
	return errors.New(msg)
}
