package registry

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/hamba/avro/v2"
	hregistry "github.com/hamba/avro/v2/registry"

	"github.com/eddy-cdc/eddy/internal/avrobin"
)

// Confluent's wire format: a zero magic byte, the schema id as four
// big-endian bytes, then the Avro binary body.
const (
	wireMagic  = 0
	wireHeader = 5
)

// ErrNotWireFormat is data that does not start with the wire-format header.
var ErrNotWireFormat = errors.New("not in the Confluent wire format")

// ErrRegistration marks a schema the registry did not register: it is
// down, read-only (mode READONLY), or refuses the schema as incompatible.
// That is the registry's trouble or the schema's, never one record's: the
// runtime retries it and then fails the task, and dead-letters nothing.
var ErrRegistration = errors.New("schema registration failed")

// SchemaSource is where a Serde finds and registers schemas: the Registry in this
// process (Local) or a Confluent-compatible one over HTTP (Remote).
type SchemaSource interface {
	SchemaByID(ctx context.Context, id int) (avro.Schema, error)
	RegisterSchema(ctx context.Context, subject, schema string) (int, error)
	// DefaultLevel sets a subject's compatibility level unless it has
	// one of its own.
	DefaultLevel(ctx context.Context, subject string, level Level) error
}

type localSource struct{ r *Registry }

// Local is a SchemaSource over a Registry in this process.
func Local(r *Registry) SchemaSource { return localSource{r} }

func (l localSource) SchemaByID(_ context.Context, id int) (avro.Schema, error) {
	s, err := l.r.SchemaByID(id)
	if err != nil {
		return nil, err
	}
	return s.Parsed(), nil
}

func (l localSource) RegisterSchema(ctx context.Context, subject, schema string) (int, error) {
	id, _, err := l.r.Register(ctx, subject, schema, nil)
	return id, err
}

func (l localSource) DefaultLevel(ctx context.Context, subject string, level Level) error {
	if _, ok := l.r.SubjectLevel(subject); ok {
		return nil
	}
	return l.r.SetLevel(ctx, subject, level)
}

type remoteSource struct{ c *hregistry.Client }

// RemoteOptions are how a Remote source reaches its registry: the HTTP
// client (TLS), and HTTP Basic credentials (Confluent's
// basic.auth.user.info, user:password) or a bearer token.
type RemoteOptions struct {
	HTTP     *http.Client
	UserInfo string
	Token    string
}

// Remote is a SchemaSource over a Confluent-compatible registry at url (Eddy's,
// or Confluent's own).
func Remote(url string, opts ...RemoteOptions) (SchemaSource, error) {
	var o RemoteOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	hc := o.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	var hopts []hregistry.ClientFunc
	if o.Token != "" {
		rt := hc.Transport
		if rt == nil {
			rt = http.DefaultTransport
		}
		hc = &http.Client{Timeout: hc.Timeout, Transport: bearer{o.Token, rt}}
	}
	hopts = append(hopts, hregistry.WithHTTPClient(hc))
	if user, pass, ok := strings.Cut(o.UserInfo, ":"); ok {
		hopts = append(hopts, hregistry.WithBasicAuth(user, pass))
	}
	c, err := hregistry.NewClient(url, hopts...)
	if err != nil {
		return nil, fmt.Errorf("schema registry client for %s: %w", url, err)
	}
	return remoteSource{c}, nil
}

// bearer adds a bearer token to every request.
type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

func (r remoteSource) SchemaByID(ctx context.Context, id int) (avro.Schema, error) {
	return r.c.GetSchema(ctx, id)
}

func (r remoteSource) RegisterSchema(ctx context.Context, subject, schema string) (int, error) {
	id, _, err := r.c.CreateSchema(ctx, subject, schema)
	return id, err
}

func (r remoteSource) DefaultLevel(ctx context.Context, subject string, level Level) error {
	if _, err := r.c.GetCompatibilityLevel(ctx, subject); err == nil {
		return nil // the subject has its own level (or the server answers with the global one)
	}
	return r.c.SetCompatibilityLevel(ctx, subject, string(level))
}

// Serde encodes and decodes records in the Confluent wire format, caching
// schemas by id and registrations by subject and schema, so the registry is
// asked once per schema, not once per record. It is safe for concurrent use.
type Serde struct {
	src SchemaSource

	mu      sync.RWMutex
	byID    map[int]avro.Schema
	idFor   map[subjectSchema]int // by schema object: the per-record fast path
	byText  map[string]int        // by subject and full schema JSON
	codecs  map[avro.Schema]avro.API
	leveled map[string]bool
}

// subjectSchema keys registrations by the schema object itself: sources
// and transforms reuse their schema objects, so a lookup is one map probe.
// (Fingerprints would not do: they are of the Parsing Canonical Form, which
// drops defaults and docs, so two schemas that differ in a default, and
// in compatibility, would share an id.)
type subjectSchema struct {
	subject string
	schema  avro.Schema
}

// maxCachedSchemas bounds the object cache against a source that builds a
// new schema object per record; past it the cache starts over.
const maxCachedSchemas = 100_000

// NewSerde returns a Serde over src.
func NewSerde(src SchemaSource) *Serde {
	return &Serde{src: src, byID: map[int]avro.Schema{}, idFor: map[subjectSchema]int{}, byText: map[string]int{}, codecs: map[avro.Schema]avro.API{}, leveled: map[string]bool{}}
}

// codec returns the encoder and decoder cache of one schema. hamba/avro's
// shared cache keys compiled codecs by the Parsing Canonical Form's
// fingerprint, in which a reference to a named type is just its name: two
// versions of a schema that both refer to "Value", defined differently,
// would share the codec compiled for the first and misread the second.
// Within one schema a name has one definition, so a cache per schema is
// safe.
func (s *Serde) codec(schema avro.Schema) avro.API {
	s.mu.RLock()
	api, ok := s.codecs[schema]
	s.mu.RUnlock()
	if ok {
		return api
	}
	api = avro.Config{}.Freeze()
	s.mu.Lock()
	if len(s.codecs) >= maxCachedSchemas {
		s.codecs = map[avro.Schema]avro.API{}
	}
	s.codecs[schema] = api
	s.mu.Unlock()
	return api
}

// Register returns the id of schema under subject, registering it the
// first time (the registry applies the subject's compatibility level).
func (s *Serde) Register(ctx context.Context, subject string, schema avro.Schema) (int, error) {
	key := subjectSchema{subject, schema}
	s.mu.RLock()
	id, ok := s.idFor[key]
	s.mu.RUnlock()
	if ok {
		return id, nil
	}
	// The full JSON, defaults and docs included: the registry checks
	// compatibility on it.
	text, err := json.Marshal(schema)
	if err != nil {
		return 0, fmt.Errorf("register schema under %s: %w", subject, err)
	}
	textKey := subject + "\x00" + string(text)
	s.mu.RLock()
	id, ok = s.byText[textKey]
	s.mu.RUnlock()
	if !ok {
		if id, err = s.src.RegisterSchema(ctx, subject, string(text)); err != nil {
			return 0, fmt.Errorf("%w under %s: %w", ErrRegistration, subject, err)
		}
	}
	s.mu.Lock()
	if len(s.idFor) >= maxCachedSchemas {
		s.idFor, s.byText = map[subjectSchema]int{}, map[string]int{}
	}
	s.idFor[key] = id
	s.byText[textKey] = id
	if _, known := s.byID[id]; !known {
		s.byID[id] = schema
	}
	s.mu.Unlock()
	return id, nil
}

// DefaultLevel sets a subject's compatibility level unless it has its own,
// once per subject and Serde.
func (s *Serde) DefaultLevel(ctx context.Context, subject string, level Level) error {
	s.mu.RLock()
	done := s.leveled[subject]
	s.mu.RUnlock()
	if done {
		return nil
	}
	if err := s.src.DefaultLevel(ctx, subject, level); err != nil {
		return fmt.Errorf("compatibility of %s: %w", subject, err)
	}
	s.mu.Lock()
	s.leveled[subject] = true
	s.mu.Unlock()
	return nil
}

// Encode appends v, written with schema registered under subject, to dst in
// the wire format.
func (s *Serde) Encode(ctx context.Context, dst []byte, subject string, schema avro.Schema, v any) ([]byte, error) {
	id, err := s.Register(ctx, subject, schema)
	if err != nil {
		return dst, err
	}
	body, err := s.codec(schema).Marshal(schema, v)
	if err != nil {
		return dst, fmt.Errorf("encode with schema %d: %w", id, err)
	}
	dst = append(dst, wireMagic)
	dst = binary.BigEndian.AppendUint32(dst, uint32(id))
	return append(dst, body...), nil
}

// Schema returns the schema with the given id, from the cache or the source.
func (s *Serde) Schema(ctx context.Context, id int) (avro.Schema, error) {
	s.mu.RLock()
	sch, ok := s.byID[id]
	s.mu.RUnlock()
	if ok {
		return sch, nil
	}
	sch, err := s.src.SchemaByID(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("schema %d: %w", id, err)
	}
	s.mu.Lock()
	s.byID[id] = sch
	s.mu.Unlock()
	return sch, nil
}

// SplitWire reads the wire-format header: the schema id and the Avro body.
func SplitWire(data []byte) (int, []byte, error) {
	if len(data) < wireHeader || data[0] != wireMagic {
		return 0, nil, ErrNotWireFormat
	}
	return int(binary.BigEndian.Uint32(data[1:])), data[wireHeader:], nil
}

// Decode reads wire-format data into v (a pointer, as avro.Unmarshal takes)
// and returns the writer's schema.
func (s *Serde) Decode(ctx context.Context, data []byte, v any) (avro.Schema, error) {
	id, body, err := SplitWire(data)
	if err != nil {
		return nil, err
	}
	sch, err := s.Schema(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := s.codec(sch).Unmarshal(sch, body, v); err != nil {
		return nil, fmt.Errorf("decode with schema %d: %w", id, err)
	}
	return sch, nil
}

// DecodeJSON renders wire-format data as JSON, for people and tools that
// read JSON: records as objects, bytes as base64 strings, and unions as the
// value of their branch (null as null).
func (s *Serde) DecodeJSON(ctx context.Context, data []byte) ([]byte, error) {
	var v any
	if _, err := s.Decode(ctx, data, &v); err != nil {
		return nil, err
	}
	return json.Marshal(plainDecimals(v))
}

// plainDecimals replaces the decimals in a decoded value by their exact
// text ("19.99"), which json.Marshal would write as a fraction
// ("1999/100").
func plainDecimals(v any) any {
	switch x := v.(type) {
	case *big.Rat:
		return avrobin.DecimalString(x)
	case map[string]any:
		for k, e := range x {
			x[k] = plainDecimals(e)
		}
	case []any:
		for i, e := range x {
			x[i] = plainDecimals(e)
		}
	}
	return v
}

// EncodeJSON renders v as plain JSON, for connectors configured with the
// json format: no registry and no header. v is checked against schema
// first, by encoding it, so a value that does not fit is refused with the
// reason, and the JSON is the same DecodeJSON gives for the Avro form.
// It compiles a codec per call (see Serde.codec for why it shares none).
func EncodeJSON(schema avro.Schema, v any) ([]byte, error) {
	api := avro.Config{}.Freeze()
	body, err := api.Marshal(schema, v)
	if err != nil {
		return nil, fmt.Errorf("value does not match schema %s: %w", schema.Type(), err)
	}
	var generic any
	if err := api.Unmarshal(schema, body, &generic); err != nil {
		return nil, fmt.Errorf("render as JSON: %w", err)
	}
	return json.Marshal(plainDecimals(generic))
}
