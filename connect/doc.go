// Package connect is Eddy's runtime: it runs connectors that move changes
// from sources into the log and from the log into sinks. The admin API
// that steers them is package admin; the contract suites every plugin runs
// are connect/connecttest.
//
//   - Catalog is plugins.yaml, embedded in the binary: every source, sink,
//     transform and job with its parameters' types, defaults, and whether
//     they are required or secret. Config (eddy.yaml) is checked against it;
//     every error names the file, the line and the key, and a plugin gets
//     Params whose values already have their declared types.
//   - Source and Sink are the contracts plugins implement (sources/*,
//     sinks/*); Plugins maps catalog names to their constructors. A sink
//     that keeps its offsets with its data implements OffsetStore; one
//     that stores records at points of its own (an object store's files)
//     implements BufferingSink, and the group's offsets follow what it
//     stored rather than what it was given.
//   - Worker runs one task per connector, each a goroutine it owns. A task
//     is RUNNING, PAUSED, FAILED (with its error) or UNASSIGNED (stopped,
//     or a scheduled connector between runs). Transient failures restart it
//     with exponential backoff until errors.retry_timeout; a failure never
//     reaches another connector. Close drains every task: the batch in
//     hand is finished and committed.
//   - The checkpoint protocol (task_source.go): poll, transform, serialize
//     through the registry, append durably, store the position in
//     __connect_offsets durably, then acknowledge the source. Records carry
//     their connector and position in headers, so after a crash the records
//     the log holds past the stored position are found, per partition, and
//     not appended twice. A source's position is never acknowledged before
//     its records are durable.
//   - Sinks (task_sink.go) consume in the group connect-<name> and commit
//     only after the sink reports a batch stored.
//   - Errors: a record that cannot be transformed, converted or delivered
//     fails the task (errors.tolerance none) or goes to the dead-letter
//     topic with Kafka Connect's __connect.errors.* headers (all).
//   - Converter writes Avro in the Confluent wire format (or JSON) and reads
//     whatever it finds, with internal/avrobin's codecs.
//   - Transform is a single-message transform: transform.go has the
//     interface and the envelope and schema helpers; each transform has its
//     file (transform_fields.go: drop, rename, mask; transform_filter.go,
//     transform_route.go, transform_header.go, transform_unwrap.go).
//
// This package must never import a source or a sink by name: cmd/eddy
// assembles Plugins.
package connect
