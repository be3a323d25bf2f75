// Package registry is Eddy's built-in schema registry: subjects, versions
// and global ids for Avro schemas, with Confluent's compatibility levels and
// (as it is built) its REST API, stored in the compacted log topic
// _schemas. It imports only Eddy's log.
//
// So far it holds the compatibility rules: CheckCompatibility decides
// whether a candidate schema may follow a subject's earlier versions under a
// Level (NONE, BACKWARD, FORWARD, FULL and their _TRANSITIVE forms), using
// Avro's schema-resolution rules as hamba/avro implements them.
package registry
