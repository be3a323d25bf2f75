package registry

import (
	"context"
	"fmt"
	"sort"

	"github.com/hamba/avro/v2"

	elog "github.com/eddy-cdc/eddy/log"
)

// Latest names a subject's newest live version in Get and friends.
const Latest = -1

// writeLocked makes changes durable in _schemas, then applies them to memory.
// Called with writeMu held.
func (r *Registry) writeLocked(ctx context.Context, recs ...elog.Record) error {
	if _, _, err := r.part.Append(ctx, recs); err != nil {
		return fmt.Errorf("store in %s: %w", SchemasTopic, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, rec := range recs {
		if err := r.applyLocked(rec); err != nil {
			return err // cannot happen: we built the record
		}
	}
	return nil
}

// Register adds a schema to a subject and returns its global id and
// version. A schema the subject already has (live) returns its existing id
// and version; the same schema under another subject shares its id. A
// schema the subject's compatibility level refuses is ErrIncompatible, with
// the reasons.
func (r *Registry) Register(ctx context.Context, subj, text string, refs []Reference) (id, version int, err error) {
	if subj == "" {
		return 0, 0, fmt.Errorf("register: %w: empty subject", ErrInvalidSchema)
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.RLock()
	if key, err := dedupeKey(text, refs); err == nil {
		if v := r.liveVersionOf(subj, r.byKey[key]); v != nil {
			r.mu.RUnlock()
			return v.Schema.ID, v.Version, nil // already registered: no parse, and no change in any mode
		}
	}
	if err := r.writableLocked(subj); err != nil {
		r.mu.RUnlock()
		return 0, 0, fmt.Errorf("register under %s: %w", subj, err)
	}
	parsed, key, err := r.parse(text, refs)
	if err != nil {
		r.mu.RUnlock()
		return 0, 0, fmt.Errorf("register under %s: %w", subj, err)
	}
	s := r.subjects[subj]
	var live []*Version
	maxVersion := 0
	if s != nil {
		for _, v := range s.versions {
			maxVersion = max(maxVersion, v.Version)
			if !v.Deleted {
				live = append(live, v)
			}
		}
	}
	existing := r.byKey[key]
	level := r.levelOf(subj)
	r.mu.RUnlock()

	previous := make([]avro.Schema, len(live))
	for i, v := range live {
		previous[i] = v.Schema.parsed
	}
	if msgs := CheckCompatibility(level, parsed, previous); len(msgs) > 0 {
		return 0, 0, &IncompatibleError{Subject: subj, Level: level, Messages: msgs}
	}
	id = r.nextID
	recs := []elog.Record{}
	if existing != nil {
		id = existing.ID
	} else {
		recs = append(recs, record(recordKey{KeyType: "ID", Magic: 1}, idValue{NextID: id + 1}))
	}
	version = maxVersion + 1
	recs = append(recs, record(schemaKey(subj, version), schemaValue{
		Subject: subj, Version: version, ID: id, Schema: text, References: refs,
	}))
	if err := r.writeLocked(ctx, recs...); err != nil {
		return 0, 0, err
	}
	return id, version, nil
}

// IncompatibleError says why a schema may not follow a subject's versions.
type IncompatibleError struct {
	Subject  string
	Level    Level
	Messages []string
}

func (e *IncompatibleError) Error() string {
	return fmt.Sprintf("schema being registered is incompatible with an earlier schema for subject %q (%s): %v", e.Subject, e.Level, e.Messages)
}

// Is makes errors.Is(err, ErrIncompatible) true.
func (e *IncompatibleError) Is(target error) bool { return target == ErrIncompatible }

// Lookup finds the version of subj that holds the given schema.
func (r *Registry) Lookup(subj, text string, refs []Reference, includeDeleted bool) (*Version, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.subjects[subj]
	if s == nil || (!includeDeleted && allDeleted(s)) {
		return nil, fmt.Errorf("%w: %s", ErrSubjectNotFound, subj)
	}
	key, err := dedupeKey(text, refs)
	if err != nil {
		return nil, err
	}
	if sch := r.byKey[key]; sch != nil {
		for _, v := range s.versions {
			if v.Schema == sch && (includeDeleted || !v.Deleted) {
				return v, nil
			}
		}
	} else if _, _, err := r.parse(text, refs); err != nil {
		return nil, err // an invalid schema is 42201, not "not found"
	}
	return nil, fmt.Errorf("%w: under subject %s", ErrSchemaNotFound, subj)
}

// liveVersionOf returns subj's live version holding sch, or nil.
func (r *Registry) liveVersionOf(subj string, sch *Schema) *Version {
	if s := r.subjects[subj]; s != nil && sch != nil {
		for _, v := range s.versions {
			if v.Schema == sch && !v.Deleted {
				return v
			}
		}
	}
	return nil
}

func allDeleted(s *subject) bool {
	for _, v := range s.versions {
		if !v.Deleted {
			return false
		}
	}
	return true
}

// Subjects lists subject names in order.
func (r *Registry) Subjects(includeDeleted bool) []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := []string{}
	for name, s := range r.subjects {
		if len(s.versions) > 0 && (includeDeleted || !allDeleted(s)) {
			out = append(out, name)
		}
	}
	sort.Strings(out)
	return out
}

// Versions lists a subject's version numbers.
func (r *Registry) Versions(subj string, includeDeleted bool) ([]int, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	s := r.subjects[subj]
	if s == nil || len(s.versions) == 0 || (!includeDeleted && allDeleted(s)) {
		return nil, fmt.Errorf("%w: %s", ErrSubjectNotFound, subj)
	}
	out := []int{}
	for _, v := range s.versions {
		if includeDeleted || !v.Deleted {
			out = append(out, v.Version)
		}
	}
	return out, nil
}

// Get returns one version of a subject; Latest is the newest live one.
func (r *Registry) Get(subj string, version int, includeDeleted bool) (*Version, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.version(subj, version, includeDeleted)
}

func (r *Registry) version(subj string, version int, includeDeleted bool) (*Version, error) {
	s := r.subjects[subj]
	if s == nil || len(s.versions) == 0 || (!includeDeleted && allDeleted(s)) {
		return nil, fmt.Errorf("%w: %s", ErrSubjectNotFound, subj)
	}
	if version == Latest {
		for i := len(s.versions) - 1; i >= 0; i-- {
			if includeDeleted || !s.versions[i].Deleted {
				return s.versions[i], nil
			}
		}
		return nil, fmt.Errorf("%w: %s has no live version", ErrVersionNotFound, subj)
	}
	if version < 1 {
		return nil, fmt.Errorf("%w: %d (versions count from 1)", ErrInvalidVersion, version)
	}
	for _, v := range s.versions {
		if v.Version == version && (includeDeleted || !v.Deleted) {
			return v, nil
		}
	}
	return nil, fmt.Errorf("%w: %s version %d", ErrVersionNotFound, subj, version)
}

// SchemaByID returns a schema by its global id.
func (r *Registry) SchemaByID(id int) (*Schema, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s := r.byID[id]; s != nil && r.referenced(s) {
		return s, nil
	}
	return nil, fmt.Errorf("%w: id %d", ErrSchemaNotFound, id)
}

// referenced reports whether any version, live or soft deleted, still has
// the schema; one only permanently deleted versions had is gone.
func (r *Registry) referenced(sch *Schema) bool {
	for _, s := range r.subjects {
		for _, v := range s.versions {
			if v.Schema == sch {
				return true
			}
		}
	}
	return false
}

// VersionsOfID lists the subject versions that hold schema id.
func (r *Registry) VersionsOfID(id int, includeDeleted bool) []Version {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []Version
	for _, s := range r.subjects {
		for _, v := range s.versions {
			if v.Schema.ID == id && (includeDeleted || !v.Deleted) {
				out = append(out, *v)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i].Subject < out[j].Subject || out[i].Subject == out[j].Subject && out[i].Version < out[j].Version
	})
	return out
}

// DeleteVersion soft deletes a version, or with permanent forgets one that
// was soft deleted before, as Confluent requires.
func (r *Registry) DeleteVersion(ctx context.Context, subj string, version int, permanent bool) (int, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.RLock()
	v, err := r.version(subj, version, true)
	if err == nil {
		err = r.writableLocked(subj)
	}
	r.mu.RUnlock()
	if err != nil {
		return 0, err
	}
	switch {
	case !permanent && v.Deleted:
		return 0, fmt.Errorf("%w: %s version %d", ErrVersionSoftDeleted, subj, v.Version)
	case permanent && !v.Deleted:
		return 0, fmt.Errorf("%w: %s version %d", ErrNotSoftDeleted, subj, v.Version)
	case permanent:
		return v.Version, r.writeLocked(ctx, record(schemaKey(subj, v.Version), nil))
	}
	return v.Version, r.writeLocked(ctx, record(schemaKey(subj, v.Version), schemaValue{
		Subject: subj, Version: v.Version, ID: v.Schema.ID, Schema: v.Schema.Text, References: v.Schema.References, Deleted: true,
	}))
}

// DeleteSubject soft deletes every version of a subject, or with permanent
// forgets a subject that was soft deleted before. It returns the versions.
func (r *Registry) DeleteSubject(ctx context.Context, subj string, permanent bool) ([]int, error) {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.RLock()
	s := r.subjects[subj]
	if s == nil || len(s.versions) == 0 {
		r.mu.RUnlock()
		return nil, fmt.Errorf("%w: %s", ErrSubjectNotFound, subj)
	}
	if err := r.writableLocked(subj); err != nil {
		r.mu.RUnlock()
		return nil, err
	}
	if !permanent && allDeleted(s) {
		r.mu.RUnlock()
		return nil, fmt.Errorf("%w: %s", ErrSubjectSoftDeleted, subj)
	}
	var recs []elog.Record
	var versions []int
	for _, v := range s.versions {
		if permanent && !v.Deleted {
			r.mu.RUnlock()
			return nil, fmt.Errorf("%w: subject %s", ErrNotSoftDeleted, subj)
		}
		versions = append(versions, v.Version)
		if permanent {
			recs = append(recs, record(schemaKey(subj, v.Version), nil))
		} else if !v.Deleted {
			recs = append(recs, record(schemaKey(subj, v.Version), schemaValue{
				Subject: subj, Version: v.Version, ID: v.Schema.ID, Schema: v.Schema.Text, References: v.Schema.References, Deleted: true,
			}))
		}
	}
	if permanent && s.level != "" {
		recs = append(recs, record(recordKey{KeyType: "CONFIG", Subject: &subj, Magic: 0}, nil))
	}
	r.mu.RUnlock()
	if len(recs) == 0 {
		return versions, nil
	}
	return versions, r.writeLocked(ctx, recs...)
}

// Level returns the level in force for subj ("" asks for the global one).
func (r *Registry) Level(subj string) Level {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.levelOf(subj)
}

// SubjectLevel returns a subject's own level, if it has one.
func (r *Registry) SubjectLevel(subj string) (Level, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if s := r.subjects[subj]; s != nil && s.level != "" {
		return s.level, true
	}
	return "", false
}

func (r *Registry) levelOf(subj string) Level {
	if s := r.subjects[subj]; subj != "" && s != nil && s.level != "" {
		return s.level
	}
	return r.level
}

// SetLevel sets the global level (subj "") or a subject's.
func (r *Registry) SetLevel(ctx context.Context, subj string, level Level) error {
	if _, err := ParseLevel(string(level)); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidCompatibility, err)
	}
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.RLock()
	err := r.writableLocked(subj)
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	k := recordKey{KeyType: "CONFIG", Magic: 0}
	if subj != "" {
		k.Subject = &subj
	}
	return r.writeLocked(ctx, record(k, configValue{level}))
}

// DeleteLevel drops a subject's own level (it follows the global one
// again), or resets the global level to BACKWARD.
func (r *Registry) DeleteLevel(ctx context.Context, subj string) error {
	r.writeMu.Lock()
	defer r.writeMu.Unlock()
	r.mu.RLock()
	err := r.writableLocked(subj)
	r.mu.RUnlock()
	if err != nil {
		return err
	}
	k := recordKey{KeyType: "CONFIG", Magic: 0}
	if subj != "" {
		r.mu.RLock()
		s := r.subjects[subj]
		r.mu.RUnlock()
		if s == nil || s.level == "" {
			return fmt.Errorf("%w: %s has no compatibility level of its own", ErrSubjectNotFound, subj)
		}
		k.Subject = &subj
	}
	return r.writeLocked(ctx, record(k, nil))
}

// Check reports whether text could be registered under subj against the
// given version (Latest: by the subject's level), without registering it.
func (r *Registry) Check(subj string, version int, text string, refs []Reference) ([]string, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	parsed, _, err := r.parse(text, refs)
	if err != nil {
		return nil, err
	}
	level := r.levelOf(subj)
	s := r.subjects[subj]
	if s == nil || allDeleted(s) {
		if version == Latest {
			return nil, nil // nothing to be incompatible with
		}
		return nil, fmt.Errorf("%w: %s", ErrSubjectNotFound, subj)
	}
	var previous []avro.Schema
	if version == Latest {
		for _, v := range s.versions {
			if !v.Deleted {
				previous = append(previous, v.Schema.parsed)
			}
		}
	} else {
		v, err := r.version(subj, version, false)
		if err != nil {
			return nil, err
		}
		previous = []avro.Schema{v.Schema.parsed}
		if level.transitive() {
			level = Level(string(level)[:len(level)-len("_TRANSITIVE")])
		}
	}
	return CheckCompatibility(level, parsed, previous), nil
}

// ReferencedBy lists the schema ids of live versions that reference the
// given subject version.
func (r *Registry) ReferencedBy(subj string, version int) []int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	seen := map[int]bool{}
	out := []int{}
	for _, s := range r.subjects {
		for _, v := range s.versions {
			if v.Deleted || seen[v.Schema.ID] {
				continue
			}
			for _, ref := range v.Schema.References {
				if ref.Subject == subj && ref.Version == version {
					seen[v.Schema.ID] = true
					out = append(out, v.Schema.ID)
					break
				}
			}
		}
	}
	sort.Ints(out)
	return out
}
