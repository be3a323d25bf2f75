package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/hamba/avro/v2"

	elog "github.com/eddy-cdc/eddy/log"
)

// SchemasTopic is the compacted topic that holds the registry's state, in
// the record shapes Confluent's Schema Registry uses for its own _schemas.
const SchemasTopic = "_schemas"

// Errors callers branch on; the REST API maps them to Confluent's codes.
var (
	ErrSubjectNotFound      = errors.New("subject not found")           // 40401
	ErrVersionNotFound      = errors.New("version not found")           // 40402
	ErrSchemaNotFound       = errors.New("schema not found")            // 40403
	ErrSubjectSoftDeleted   = errors.New("subject was soft deleted")    // 40404
	ErrVersionSoftDeleted   = errors.New("version was soft deleted")    // 40406
	ErrNotSoftDeleted       = errors.New("must be soft deleted first")  // 40405 / 40407
	ErrIncompatible         = errors.New("schema is incompatible")      // 409
	ErrInvalidSchema        = errors.New("invalid schema")              // 42201
	ErrInvalidVersion       = errors.New("invalid version")             // 42202
	ErrInvalidCompatibility = errors.New("invalid compatibility level") // 42203
	ErrReferenceNotFound    = errors.New("referenced schema not found") // 42201 as well
)

// Reference names another subject's version that a schema uses by name.
type Reference struct {
	Name    string `json:"name"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

// Schema is one registered schema, shared by every subject version that
// registered the same text. Its id is global and never reused.
type Schema struct {
	ID         int
	Text       string
	References []Reference
	parsed     avro.Schema
}

// Parsed is the schema as hamba/avro reads it, with references resolved.
func (s *Schema) Parsed() avro.Schema { return s.parsed }

// Canonical is the schema's Parsing Canonical Form.
func (s *Schema) Canonical() string { return s.parsed.String() }

// Version is one version of a subject.
type Version struct {
	Subject string
	Version int
	Schema  *Schema
	Deleted bool // soft deleted: hidden, not forgotten
}

type subject struct {
	versions []*Version // by version number
	level    Level      // "" follows the global level
	mode     Mode       // "" follows the global mode
}

// Registry holds subjects, versions and schemas, and keeps them in the log.
//
// Invariant: memory changes only after the record that describes the change
// is durable in _schemas, so what a caller was told survives any crash, and
// replaying _schemas rebuilds exactly the state callers saw.
type Registry struct {
	part *elog.Partition

	writeMu sync.Mutex // one change at a time: check, append, apply

	mu       sync.RWMutex // guards the maps below; held only briefly
	subjects map[string]*subject
	byID     map[int]*Schema
	byKey    map[string]*Schema // normalized text + references -> schema
	nextID   int
	level    Level // global
	mode     Mode  // global
}

// Open loads the registry from _schemas in l, creating the topic if needed.
func Open(ctx context.Context, l *elog.Log) (*Registry, error) {
	t, err := l.EnsureTopic(SchemasTopic, elog.TopicConfig{
		Partitions: 1, Cleanup: elog.CleanupCompact, Retention: -1, Internal: true,
		Description: "schema registry state",
	})
	if err != nil {
		return nil, fmt.Errorf("open schema registry: %w", err)
	}
	p, _ := t.Partition(0)
	r := &Registry{part: p, subjects: map[string]*subject{}, byID: map[int]*Schema{}, byKey: map[string]*Schema{}, nextID: 1, level: Backward, mode: ReadWrite}
	if err := r.replay(ctx); err != nil {
		return nil, fmt.Errorf("open schema registry: %w", err)
	}
	return r, nil
}

// Record shapes in _schemas (Confluent's, plus an id watermark).
type recordKey struct {
	KeyType string  `json:"keytype"`           // SCHEMA, CONFIG, MODE, ID
	Subject *string `json:"subject,omitempty"` // nil: the global config
	Version int     `json:"version,omitempty"`
	Magic   int     `json:"magic"`
}

type schemaValue struct {
	Subject    string      `json:"subject"`
	Version    int         `json:"version"`
	ID         int         `json:"id"`
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
	Deleted    bool        `json:"deleted"`
}

type configValue struct {
	CompatibilityLevel Level `json:"compatibilityLevel"`
}

type idValue struct {
	NextID int `json:"next_id"`
}

func schemaKey(subj string, version int) recordKey {
	return recordKey{KeyType: "SCHEMA", Subject: &subj, Version: version, Magic: 1}
}

func record(k recordKey, v any) elog.Record {
	kb, _ := json.Marshal(k)
	if v == nil {
		return elog.Record{Key: kb}
	}
	vb, _ := json.Marshal(v)
	return elog.Record{Key: kb, Value: vb}
}

func (r *Registry) replay(ctx context.Context) error {
	var recs []elog.Record
	for off := r.part.LogStartOffset(); off < r.part.HighWatermark(); {
		res, err := r.part.Fetch(off, 4<<20)
		if err != nil {
			return err
		}
		if len(res.Data) == 0 {
			break
		}
		if recs, err = elog.DecodeBatches(recs[:0], res.Data, off); err != nil {
			return err
		}
		for _, rec := range recs {
			if err := r.applyLocked(rec); err != nil {
				return fmt.Errorf("%s at offset %d: %w", SchemasTopic, rec.Offset, err)
			}
		}
		off = res.NextOffset
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// applyLocked changes memory to match one _schemas record. Called with mu held
// (or before the registry is shared).
func (r *Registry) applyLocked(rec elog.Record) error {
	var k recordKey
	if err := json.Unmarshal(rec.Key, &k); err != nil {
		return fmt.Errorf("bad key: %w", err)
	}
	switch k.KeyType {
	case "MODE":
		return r.applyModeLocked(k, rec.Value)
	case "ID":
		var v idValue
		if rec.Value != nil {
			if err := json.Unmarshal(rec.Value, &v); err != nil {
				return fmt.Errorf("bad id watermark: %w", err)
			}
			r.nextID = max(r.nextID, v.NextID)
		}
	case "CONFIG":
		if k.Subject == nil {
			if rec.Value == nil {
				r.level = Backward
				return nil
			}
			var v configValue
			if err := json.Unmarshal(rec.Value, &v); err != nil {
				return fmt.Errorf("bad config: %w", err)
			}
			r.level = v.CompatibilityLevel
			return nil
		}
		s := r.subject(*k.Subject)
		s.level = ""
		if rec.Value != nil {
			var v configValue
			if err := json.Unmarshal(rec.Value, &v); err != nil {
				return fmt.Errorf("bad config: %w", err)
			}
			s.level = v.CompatibilityLevel
		}
	case "SCHEMA":
		if k.Subject == nil {
			return errors.New("schema record without subject")
		}
		if rec.Value == nil { // permanently deleted
			r.dropVersion(*k.Subject, k.Version)
			return nil
		}
		var v schemaValue
		if err := json.Unmarshal(rec.Value, &v); err != nil {
			return fmt.Errorf("bad schema record: %w", err)
		}
		sch := r.byID[v.ID]
		if sch == nil {
			parsed, key, err := r.parse(v.Schema, v.References)
			if err != nil {
				return fmt.Errorf("schema %d: %w", v.ID, err)
			}
			sch = &Schema{ID: v.ID, Text: v.Schema, References: v.References, parsed: parsed}
			r.byID[v.ID], r.byKey[key] = sch, sch
		}
		r.nextID = max(r.nextID, v.ID+1)
		r.putVersion(&Version{Subject: v.Subject, Version: v.Version, Schema: sch, Deleted: v.Deleted})
	}
	return nil
}

func (r *Registry) subject(name string) *subject {
	s := r.subjects[name]
	if s == nil {
		s = &subject{}
		r.subjects[name] = s
	}
	return s
}

func (r *Registry) putVersion(v *Version) {
	s := r.subject(v.Subject)
	i := sort.Search(len(s.versions), func(i int) bool { return s.versions[i].Version >= v.Version })
	if i < len(s.versions) && s.versions[i].Version == v.Version {
		s.versions[i] = v
		return
	}
	s.versions = append(s.versions, nil)
	copy(s.versions[i+1:], s.versions[i:])
	s.versions[i] = v
}

func (r *Registry) dropVersion(subj string, version int) {
	s := r.subjects[subj]
	if s == nil {
		return
	}
	for i, v := range s.versions {
		if v.Version == version {
			s.versions = append(s.versions[:i], s.versions[i+1:]...)
			break
		}
	}
	if len(s.versions) == 0 && s.level == "" {
		delete(r.subjects, subj)
	}
}

// parse reads schema text with its references resolved, and returns the
// key that identifies it for dedupe: the JSON normalized (whitespace and key
// order do not matter) plus the references.
func (r *Registry) parse(text string, refs []Reference) (avro.Schema, string, error) {
	key, err := dedupeKey(text, refs)
	if err != nil {
		return nil, "", err
	}
	cache := &avro.SchemaCache{}
	if err := r.loadReferences(refs, cache, 0); err != nil {
		return nil, "", err
	}
	parsed, err := avro.ParseWithCache(text, "", cache)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrInvalidSchema, err)
	}
	return parsed, key, nil
}

// dedupeKey identifies a schema for dedupe without parsing it as Avro: its
// JSON normalized (whitespace and key order do not matter) plus its
// references. It is far cheaper than a parse, so lookups of known schemas
// never parse.
func dedupeKey(text string, refs []Reference) (string, error) {
	var doc any
	if err := json.Unmarshal([]byte(text), &doc); err != nil {
		return "", fmt.Errorf("%w: not JSON: %v", ErrInvalidSchema, err)
	}
	norm, _ := json.Marshal(doc)
	refKey, _ := json.Marshal(refs)
	return string(norm) + "|" + string(refKey), nil
}

// loadReferences parses referenced schemas, depth first, into cache so the
// names they define resolve in the schema that uses them.
func (r *Registry) loadReferences(refs []Reference, cache *avro.SchemaCache, depth int) error {
	if depth > 32 {
		return fmt.Errorf("%w: references nest deeper than 32", ErrInvalidSchema)
	}
	for _, ref := range refs {
		v, err := r.version(ref.Subject, ref.Version, false)
		if err != nil {
			return fmt.Errorf("%w: %s version %d (as %q): %v", ErrReferenceNotFound, ref.Subject, ref.Version, ref.Name, err)
		}
		if err := r.loadReferences(v.Schema.References, cache, depth+1); err != nil {
			return err
		}
		if _, err := avro.ParseWithCache(v.Schema.Text, "", cache); err != nil {
			return fmt.Errorf("%w: reference %s: %v", ErrInvalidSchema, ref.Name, err)
		}
	}
	return nil
}
