package log

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
)

// FsyncPolicy says when appended data is forced to disk, and so when an
// append is acknowledged.
type FsyncPolicy string

// Fsync policies. With FsyncAlways (the default) Append returns only after
// an fsync that covers the batch; concurrent appenders share one fsync.
const (
	FsyncAlways   FsyncPolicy = "always"
	FsyncInterval FsyncPolicy = "interval" // written at once, synced every FlushInterval
	FsyncNever    FsyncPolicy = "never"    // written at once, synced by the OS
)

// CleanupPolicy is what a topic's cleaner does with old records.
type CleanupPolicy string

// Cleanup policies.
const (
	CleanupDelete  CleanupPolicy = "delete"  // retention deletes whole old segments
	CleanupCompact CleanupPolicy = "compact" // the latest record per key stays
)

// Duration is a time.Duration that reads and writes as "72h", "90s".
type Duration time.Duration

// MarshalJSON writes the duration as a string such as "168h0m0s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON accepts a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"72h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// TopicConfig is a topic's configuration. Zero fields take the defaults of
// DefaultTopicConfig when the topic is created; negative retentions mean
// "keep forever", as in Kafka.
type TopicConfig struct {
	Partitions         int           `json:"partitions"`
	Cleanup            CleanupPolicy `json:"cleanup"`
	Retention          Duration      `json:"retention"`                // by time; -1 keeps forever
	RetentionBytes     int64         `json:"retention_bytes"`          // per partition; -1 keeps all
	SegmentBytes       int64         `json:"segment_bytes"`            // roll when a segment would exceed it
	SegmentAge         Duration      `json:"segment_age"`              // roll a segment this old
	DeleteRetention    Duration      `json:"delete_retention"`         // how long compaction keeps tombstones
	Fsync              FsyncPolicy   `json:"fsync"`                    // always | interval | never
	FlushInterval      Duration      `json:"flush_interval,omitempty"` // with fsync interval
	MaxRecordBytes     int           `json:"max_record_bytes"`         // largest key+value+headers
	MaxBatchBytes      int           `json:"max_batch_bytes"`          // largest encoded batch
	Compression        string        `json:"compression"`              // none | gzip | zstd, for batches Eddy encodes
	IndexIntervalBytes int64         `json:"index_interval_bytes"`     // bytes between sparse index entries
	Internal           bool          `json:"internal,omitempty"`       // a topic Eddy keeps for itself
	Description        string        `json:"description,omitempty"`    // free text
}

// DefaultTopicConfig is what a topic gets for every field left zero. The
// values follow Kafka's broker defaults where Kafka has one.
func DefaultTopicConfig() TopicConfig {
	return TopicConfig{
		Partitions:         1,
		Cleanup:            CleanupDelete,
		Retention:          Duration(7 * 24 * time.Hour),
		RetentionBytes:     -1,
		SegmentBytes:       1 << 30,
		SegmentAge:         Duration(7 * 24 * time.Hour),
		DeleteRetention:    Duration(24 * time.Hour),
		Fsync:              FsyncAlways,
		FlushInterval:      Duration(time.Second),
		MaxRecordBytes:     8 << 20,
		MaxBatchBytes:      16 << 20,
		Compression:        "none",
		IndexIntervalBytes: 4096,
	}
}

// withDefaults fills zero fields from def.
func (c TopicConfig) withDefaults(def TopicConfig) TopicConfig {
	if c.Partitions == 0 {
		c.Partitions = def.Partitions
	}
	if c.Cleanup == "" {
		c.Cleanup = def.Cleanup
	}
	if c.Retention == 0 {
		c.Retention = def.Retention
	}
	if c.RetentionBytes == 0 {
		c.RetentionBytes = def.RetentionBytes
	}
	if c.SegmentBytes == 0 {
		c.SegmentBytes = def.SegmentBytes
	}
	if c.SegmentAge == 0 {
		c.SegmentAge = def.SegmentAge
	}
	if c.DeleteRetention == 0 {
		c.DeleteRetention = def.DeleteRetention
	}
	if c.Fsync == "" {
		c.Fsync = def.Fsync
	}
	if c.FlushInterval == 0 {
		c.FlushInterval = def.FlushInterval
	}
	if c.MaxRecordBytes == 0 {
		c.MaxRecordBytes = def.MaxRecordBytes
	}
	if c.MaxBatchBytes == 0 {
		c.MaxBatchBytes = def.MaxBatchBytes
	}
	if c.Compression == "" {
		c.Compression = def.Compression
	}
	if c.IndexIntervalBytes == 0 {
		c.IndexIntervalBytes = def.IndexIntervalBytes
	}
	return c
}

// Validate reports the first field that is out of range, naming it.
func (c TopicConfig) Validate() error {
	var errs []error
	bad := func(key, format string, a ...any) { errs = append(errs, fmt.Errorf(key+": "+format, a...)) }
	if c.Partitions < 1 || c.Partitions > 10000 {
		bad("partitions", "%d is outside 1..10000", c.Partitions)
	}
	if c.Cleanup != CleanupDelete && c.Cleanup != CleanupCompact {
		bad("cleanup", "%q is not delete or compact", c.Cleanup)
	}
	if c.SegmentBytes < 1024 || c.SegmentBytes > maxSegmentBytes {
		bad("segment_bytes", "%d is outside 1024..%d", c.SegmentBytes, maxSegmentBytes)
	}
	if c.SegmentAge < Duration(time.Millisecond) {
		bad("segment_age", "%s is not positive", time.Duration(c.SegmentAge))
	}
	if c.DeleteRetention < 0 {
		bad("delete_retention", "%s is negative", time.Duration(c.DeleteRetention))
	}
	switch c.Fsync {
	case FsyncAlways, FsyncNever:
	case FsyncInterval:
		if c.FlushInterval < Duration(time.Millisecond) {
			bad("flush_interval", "%s is below 1ms", time.Duration(c.FlushInterval))
		}
	default:
		bad("fsync", "%q is not always, interval or never", c.Fsync)
	}
	// A batch larger than segment_bytes gets a segment to itself, as in
	// Kafka; the cap keeps positions within the index's 32 bits.
	if c.MaxBatchBytes < BatchHeaderSize+64 || c.MaxBatchBytes > 1<<30 {
		bad("max_batch_bytes", "%d is outside %d..%d", c.MaxBatchBytes, BatchHeaderSize+64, 1<<30)
	}
	if c.MaxRecordBytes < 1 || c.MaxRecordBytes > c.MaxBatchBytes {
		bad("max_record_bytes", "%d is outside 1..max_batch_bytes (%d)", c.MaxRecordBytes, c.MaxBatchBytes)
	}
	if _, err := ParseCompression(c.Compression); err != nil {
		bad("compression", "%v", err)
	}
	if c.IndexIntervalBytes < 1 {
		bad("index_interval_bytes", "%d is not positive", c.IndexIntervalBytes)
	}
	return errors.Join(errs...)
}

var topicNameRE = regexp.MustCompile(`^[a-zA-Z0-9._-]+$`)

// ValidateTopicName applies Kafka's rules: 1 to 249 characters of
// [a-zA-Z0-9._-], and not "." or "..".
func ValidateTopicName(name string) error {
	switch {
	case name == "" || len(name) > 249:
		return fmt.Errorf("%w: topic name %q must be 1 to 249 characters", ErrInvalidTopic, name)
	case name == "." || name == "..":
		return fmt.Errorf("%w: topic name %q is not allowed", ErrInvalidTopic, name)
	case !topicNameRE.MatchString(name):
		return fmt.Errorf("%w: topic name %q may hold only letters, digits, '.', '_' and '-'", ErrInvalidTopic, name)
	case strings.HasSuffix(name, deletedSuffix):
		return fmt.Errorf("%w: topic name %q ends in %q, which Eddy reserves", ErrInvalidTopic, name, deletedSuffix)
	}
	return nil
}

// WithDefaultsOf returns c with its zero fields taken from def.
func WithDefaultsOf(c, def TopicConfig) TopicConfig { return c.withDefaults(def) }
