// Package sql holds the database sinks: postgres-sink and mysql-sink. A
// sink keeps a copy of the captured tables in a target database, exactly
// once: each batch's rows and the sink's offsets (table eddy_offsets:
// connector, topic, partition, next offset) are written in one target
// transaction, and on start the sink resumes from what that table says.
//
// A batch collapses to the last change of each key (the final state of a
// key depends on its last change only), then applies deletes and upserts
// and moves the offsets, in one transaction. A batch that fails is retried
// in halves, each part that applies committed with its offsets, so the
// record at fault is found and reported (connect.RecordError) with
// everything before it committed.
//
// base.go holds what both sinks share (collapsing records into changes,
// truncates, isolating a poison record), record.go reads a record as a
// change, postgres.go and mysql.go apply changes to each database, and
// types.go maps Avro types to PostgreSQL's (mysql.go has MySQL's); a
// field's source type, when it carries one, comes first. evolve.go decides
// whether a target column holds a field's new type, widens it, or stops
// the task. A change that lacks some columns (connect.HeaderUnavailable)
// takes them from the batch or updates only what it carries.
//
// postgres-sink reads envelopes and keys from the log's Avro bytes
// (avro.go) and renders rows into COPY text (avro.go) or COPY's binary
// format (pgbinary.go). change.pos, change.raw and change.rawKey alias the
// fetched data and are valid only during Write; what outlives a Write (a
// truncate's position) is copied. A large batch is applied in parts within
// its transaction, the next part's changes worked out while the current
// part's rows stream (applyPipelined).
package sql
