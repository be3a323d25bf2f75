// Package registry is Eddy's built-in schema registry: subjects, versions
// and global ids for Avro schemas, with Confluent's compatibility levels,
// kept in the compacted log topic _schemas. It imports only Eddy's log.
//
// Registry is the state: Register (deduplicating: the same schema returns
// its existing version; the same schema under another subject shares its
// global id), Lookup, Get, SchemaByID, soft and permanent deletes of
// versions and subjects, and compatibility levels, global and per subject.
// Schemas may reference other subjects' versions by name.
//
// Storage: every change is a record in _schemas, in the shapes Confluent's
// registry uses (SCHEMA and CONFIG keys; a permanent delete is a
// tombstone), plus an id watermark written in the same batch as each new
// schema, so compaction can never let a deleted schema's id come back.
// Invariant: memory changes only after the record is durable, so an
// acknowledged registration survives any crash and replaying _schemas on
// Open rebuilds exactly the state callers saw.
//
// CheckCompatibility decides whether a schema may follow earlier versions
// under a Level, by Avro's schema-resolution rules as hamba/avro implements
// them.
package registry
