// Package avrobin is Eddy's one home for Avro in its value model, shared by
// the runtime and the sinks:
//
//   - Reader, a bounds-checked reader of Avro binary, and Skipper, compiled
//     from a schema, to step over one value (sinks that read records
//     straight from the log's bytes find the fields they need and pass over
//     the rest);
//
//   - Codec, compiled once per schema, to encode and decode Avro binary
//     to and from the value model (records as map[string]any, a nullable
//     field as nil or its value, logical types as Go types);
//
//   - AppendJSON, the model rendered as JSON (files, dead letters, the
//     JSON converter);
//
//   - Envelope, compiled from a Debezium envelope schema, which scans a
//     record's bytes for its op, source table and after-image without
//     decoding it (envelope.go);
//
//   - PostgreSQL's forms: PgText for a decoded value (query parameters),
//     CopyText and CopyBinary compiled per row schema and column types to
//     render an after-image's bytes as COPY text or binary (pgtext.go,
//     pgbinary.go), the same text either way;
//
//   - Kind, what a schema is once its logical type is read, decided once
//     per schema: every renderer switches over it; Deref and NonNull, the
//     schema walks they all need.
//
//   - Parquet, compiled from a record schema: the schema as Parquet with
//     its logical types, and values shredded into Parquet rows (parquet.go);
//     Flattener, compiled from an envelope schema, which reads a change's
//     bytes straight into its row's values in order (flatten.go).
//
// A new rendering (a search document) goes here beside these, so each
// schema kind is handled in one package.
//
// Nothing here panics on malformed input: every length and count is
// checked against what is left, and nesting is bounded.
package avrobin
