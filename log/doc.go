// Package log is Eddy's embedded, partitioned, durable log: the source of
// truth every source writes and every sink reads. It imports nothing of
// Eddy's.
//
// A Log owns a data directory, locked against other processes. It holds
// Topics; a Topic has a fixed number of Partitions and one TopicConfig,
// persisted in topic.json. Keyed records go to partition
// murmur2(key) % N, exactly as Kafka's default partitioner places them.
//
// A Partition is a directory of segments named by their 20-digit base
// offset. A segment's .log file holds record batches in Kafka's
// RecordBatch v2 layout (magic 2, CRC-32C, varint records, headers,
// optional gzip or zstd); its .index maps offsets to file positions every
// index_interval_bytes, and its .timeindex maps timestamps to offsets. The
// last segment is active; it rolls on segment_bytes and segment_age.
//
// Durability: Append returns only when the batch is durable under the
// topic's fsync policy. Under "always" (the default) that means after an
// fsync; appenders that arrive while one fsync runs share the next one
// (group commit). The high watermark — the end of what readers may see —
// moves only after that point, so a reader never sees data that a crash
// could take back. The log never acknowledges before fsync under "always".
//
// Recovery: Open scans the active segment of every partition, verifying
// every batch, and truncates a torn or corrupt tail; it rebuilds any index
// that is missing or inconsistent. Fetch verifies each batch's CRC and
// reports ErrCorruptBatch rather than serve a bad record. Nothing here
// panics on a bad file.
//
// Cleanup: retention deletes whole closed segments by time and by size;
// compaction ("cleanup: compact") keeps the latest record of each key,
// drops tombstones after delete_retention and never changes an offset.
//
// Locks, in the order they are taken (a lock is never taken while holding
// one after it in this list):
//
//  1. Log.mu (the topic map);
//  2. GroupCoordinator.mu, held while a commit is appended to
//     __consumer_offsets (the append takes that partition's locks);
//  3. Partition.archMu (one archive pass at a time, the manifest);
//  4. Partition.cleanMu (one compaction at a time);
//  5. Partition.flushMu (writing, rolling, retention cutting the segment
//     list);
//  6. Partition.mu (offsets, the queued round, the sticky failure), taken
//     briefly, under flushMu when a periodic sync fails;
//  7. Partition.segsMu (the segment list);
//  8. segment.mu (a segment's indexes).
//
// Partition.hwMu and the retention guard's mu are leaves: nothing is taken
// while they are held. A function that expects a lock held says so in its
// name: ...Locked.
//
// Consumer groups: a GroupCoordinator keeps committed offsets in the
// compacted internal topic __consumer_offsets, splits a group's partitions
// among its members with Kafka's range assignor, and rebalances on join,
// leave and session expiry.
package log
