package registry

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"github.com/eddy-cdc/eddy/internal/access"
)

// ContentType is Confluent's media type; plain JSON is accepted too.
const ContentType = "application/vnd.schemaregistry.v1+json"

// maxRequestBytes bounds a request body; a schema is rarely over a few KB.
const maxRequestBytes = 4 << 20

// API serves the registry over Confluent Schema Registry's REST API: the
// same paths, JSON shapes, content type and error codes, so an unmodified
// Confluent client works against it.
type API struct {
	r     *Registry
	log   *slog.Logger
	mux   *http.ServeMux
	users []access.User
	door  http.Handler
}

// APIOption configures NewAPI.
type APIOption func(*API)

// WithUsers requires one of users' credentials, HTTP Basic as Confluent
// clients send basic.auth.user.info or a bearer token: the read role may
// look up, read and check compatibility; the write role
// (access.RoleWrite) may also register, delete and change config and
// mode. Default: no credentials asked (listen on a loopback address).
func WithUsers(users []access.User) APIOption {
	return func(a *API) { a.users = append(a.users, users...) }
}

// NewAPI returns the REST API of r.
func NewAPI(r *Registry, logger *slog.Logger, opts ...APIOption) *API {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	a := &API{r: r, log: logger, mux: http.NewServeMux()}
	for _, o := range opts {
		o(a)
	}
	m := a.mux
	m.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) { a.json(w, 200, struct{}{}) })
	m.HandleFunc("GET /subjects", a.subjects)
	m.HandleFunc("GET /subjects/{subject}/versions", a.versions)
	m.HandleFunc("POST /subjects/{subject}/versions", a.register)
	m.HandleFunc("POST /subjects/{subject}", a.lookup)
	m.HandleFunc("GET /subjects/{subject}/versions/{version}", a.getVersion)
	m.HandleFunc("GET /subjects/{subject}/versions/{version}/schema", a.getVersionSchema)
	m.HandleFunc("GET /subjects/{subject}/versions/{version}/referencedby", a.referencedBy)
	m.HandleFunc("DELETE /subjects/{subject}/versions/{version}", a.deleteVersion)
	m.HandleFunc("DELETE /subjects/{subject}", a.deleteSubject)
	m.HandleFunc("GET /schemas/ids/{id}", a.schemaByID)
	m.HandleFunc("GET /schemas/ids/{id}/schema", a.rawSchemaByID)
	m.HandleFunc("GET /schemas/ids/{id}/versions", a.versionsOfID)
	m.HandleFunc("GET /schemas/types", func(w http.ResponseWriter, _ *http.Request) { a.json(w, 200, []string{"AVRO"}) })
	m.HandleFunc("POST /compatibility/subjects/{subject}/versions/{version}", a.compatibility)
	m.HandleFunc("POST /compatibility/subjects/{subject}/versions", a.compatibility)
	m.HandleFunc("GET /config", a.getConfig)
	m.HandleFunc("PUT /config", a.putConfig)
	m.HandleFunc("DELETE /config", a.deleteConfig)
	m.HandleFunc("GET /config/{subject}", a.getConfig)
	m.HandleFunc("PUT /config/{subject}", a.putConfig)
	m.HandleFunc("DELETE /config/{subject}", a.deleteConfig)
	m.HandleFunc("GET /mode", a.getMode)
	m.HandleFunc("PUT /mode", a.putMode)
	m.HandleFunc("GET /mode/{subject}", a.getMode)
	m.HandleFunc("PUT /mode/{subject}", a.putMode)
	m.HandleFunc("DELETE /mode/{subject}", a.deleteMode)
	door := &access.Policy{Listener: "schema registry", Users: a.users, Need: needs, Realm: "eddy-schema-registry", Log: logger,
		Deny: func(w http.ResponseWriter, status int, msg string) {
			code := 40101
			if status == http.StatusForbidden {
				code = 40301
			}
			a.json(w, status, apiError{code, msg})
		}}
	a.door = door.Guard(a.mux)
	return a
}

// needs is the role a registry request needs: reads, lookups (POST
// /subjects/{subject}) and compatibility checks are reads; everything else
// writes.
func needs(r *http.Request) access.Role {
	switch {
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		return access.RoleRead
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/compatibility/"):
		return access.RoleRead
	case r.Method == http.MethodPost && strings.HasPrefix(r.URL.Path, "/subjects/") && !strings.Contains(strings.TrimPrefix(r.URL.EscapedPath(), "/subjects/"), "/"):
		return access.RoleRead
	}
	return access.RoleWrite
}

// ServeHTTP serves the API behind its door policy.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.door.ServeHTTP(w, r) }

// apiError is Confluent's error body.
type apiError struct {
	ErrorCode int    `json:"error_code"`
	Message   string `json:"message"`
}

func (a *API) json(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", ContentType)
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (a *API) fail(w http.ResponseWriter, r *http.Request, status, code int, msg string) {
	if status >= 500 {
		a.log.Error("schema registry request failed", "method", r.Method, "path", r.URL.Path, "err", msg)
	}
	a.json(w, status, apiError{code, msg})
}

// failErr maps the registry's errors to Confluent's codes and messages.
func (a *API) failErr(w http.ResponseWriter, r *http.Request, err error) {
	subj, version := r.PathValue("subject"), r.PathValue("version")
	var ie *IncompatibleError
	switch {
	case errors.As(err, &ie):
		a.fail(w, r, 409, 409, "Schema being registered is incompatible with an earlier schema for subject \""+subj+"\", details: "+strings.Join(ie.Messages, "; "))
	case errors.Is(err, ErrSubjectNotFound):
		a.fail(w, r, 404, 40401, fmt.Sprintf("Subject '%s' not found.", subj))
	case errors.Is(err, ErrVersionNotFound):
		a.fail(w, r, 404, 40402, fmt.Sprintf("Version %s not found.", version))
	case errors.Is(err, ErrSchemaNotFound):
		a.fail(w, r, 404, 40403, "Schema not found")
	case errors.Is(err, ErrSubjectSoftDeleted):
		a.fail(w, r, 404, 40404, fmt.Sprintf("Subject '%s' was soft deleted.Set permanent=true to delete permanently", subj))
	case errors.Is(err, ErrVersionSoftDeleted):
		a.fail(w, r, 404, 40406, fmt.Sprintf("Subject '%s' Version %s was soft deleted.Set permanent=true to delete permanently", subj, version))
	case errors.Is(err, ErrNotSoftDeleted) && version != "":
		a.fail(w, r, 404, 40407, fmt.Sprintf("Subject '%s' Version %s was not deleted first before being permanently deleted", subj, version))
	case errors.Is(err, ErrNotSoftDeleted):
		a.fail(w, r, 404, 40405, fmt.Sprintf("Subject '%s' was not deleted first before being permanently deleted", subj))
	case errors.Is(err, ErrInvalidSchema), errors.Is(err, ErrReferenceNotFound):
		a.fail(w, r, 422, 42201, "Invalid schema "+err.Error())
	case errors.Is(err, ErrInvalidVersion):
		a.fail(w, r, 422, 42202, invalidVersionMessage(version))
	case errors.Is(err, ErrInvalidMode):
		a.fail(w, r, 422, 42204, "Invalid mode: "+err.Error())
	case errors.Is(err, ErrReadOnlyMode):
		a.fail(w, r, 422, 42205, err.Error())
	case errors.Is(err, ErrInvalidCompatibility):
		a.fail(w, r, 422, 42203, "Invalid compatibility level. Valid values are none, backward, forward, full, backward_transitive, forward_transitive, and full_transitive")
	default:
		a.fail(w, r, 500, 50001, "Error in the backend data store - "+err.Error())
	}
}

func invalidVersionMessage(v string) string {
	return fmt.Sprintf("The specified version '%s' is not a valid version id. Allowed values are between [1, 2^31-1] and the string \"latest\"", v)
}

// parseVersion reads a version path segment: "latest", -1, or 1..2^31-1.
func parseVersion(s string) (int, bool) {
	if s == "latest" || s == "-1" {
		return Latest, true
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n < 1 {
		return 0, false
	}
	return int(n), true
}

func (a *API) version(w http.ResponseWriter, r *http.Request) (int, bool) {
	v, ok := parseVersion(r.PathValue("version"))
	if !ok {
		a.fail(w, r, 422, 42202, invalidVersionMessage(r.PathValue("version")))
	}
	return v, ok
}

func flag(r *http.Request, name string) bool { return r.URL.Query().Get(name) == "true" }

// schemaRequest is the body of register, lookup and compatibility calls.
type schemaRequest struct {
	Schema     string      `json:"schema"`
	SchemaType string      `json:"schemaType,omitempty"`
	References []Reference `json:"references,omitempty"`
}

func (a *API) readSchema(w http.ResponseWriter, r *http.Request) (schemaRequest, bool) {
	var req schemaRequest
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequestBytes+1))
	switch {
	case err != nil:
		a.fail(w, r, 400, 400, "Failed to read the request body: "+err.Error())
		return req, false
	case len(body) > maxRequestBytes:
		a.fail(w, r, 413, 413, fmt.Sprintf("Request body is larger than %d bytes", maxRequestBytes))
		return req, false
	}
	if err := json.Unmarshal(body, &req); err != nil {
		a.fail(w, r, 400, 400, "Unrecognized request body: "+err.Error())
		return req, false
	}
	if req.SchemaType != "" && req.SchemaType != "AVRO" {
		a.fail(w, r, 422, 42201, "Invalid schema: schema type "+req.SchemaType+" is not supported; Eddy's registry holds AVRO schemas")
		return req, false
	}
	if strings.TrimSpace(req.Schema) == "" {
		a.fail(w, r, 422, 42201, "Invalid schema: empty schema")
		return req, false
	}
	return req, true
}

// versionBody is a subject version as Confluent returns it.
type versionBody struct {
	Subject    string      `json:"subject"`
	ID         int         `json:"id"`
	Version    int         `json:"version"`
	Schema     string      `json:"schema"`
	References []Reference `json:"references,omitempty"`
	Deleted    bool        `json:"deleted,omitempty"`
}

func toBody(v *Version) versionBody {
	return versionBody{Subject: v.Subject, ID: v.Schema.ID, Version: v.Version, Schema: v.Schema.Text, References: v.Schema.References, Deleted: v.Deleted}
}

func (a *API) subjects(w http.ResponseWriter, r *http.Request) {
	a.json(w, 200, a.r.Subjects(flag(r, "deleted")))
}

func (a *API) versions(w http.ResponseWriter, r *http.Request) {
	vs, err := a.r.Versions(r.PathValue("subject"), flag(r, "deleted"))
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, vs)
}

func (a *API) register(w http.ResponseWriter, r *http.Request) {
	req, ok := a.readSchema(w, r)
	if !ok {
		return
	}
	id, _, err := a.r.Register(r.Context(), r.PathValue("subject"), req.Schema, req.References)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, map[string]int{"id": id})
}

func (a *API) lookup(w http.ResponseWriter, r *http.Request) {
	req, ok := a.readSchema(w, r)
	if !ok {
		return
	}
	v, err := a.r.Lookup(r.PathValue("subject"), req.Schema, req.References, flag(r, "deleted"))
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, toBody(v))
}

// subjectVersion reads the subject and version from the path and finds
// them, answering the error itself when it cannot.
func (a *API) subjectVersion(w http.ResponseWriter, r *http.Request, includeDeleted bool) (*Version, bool) {
	n, ok := a.version(w, r)
	if !ok {
		return nil, false
	}
	v, err := a.r.Get(r.PathValue("subject"), n, includeDeleted)
	if err != nil {
		a.failErr(w, r, err)
		return nil, false
	}
	return v, true
}

func (a *API) getVersion(w http.ResponseWriter, r *http.Request) {
	if v, ok := a.subjectVersion(w, r, flag(r, "deleted")); ok {
		a.json(w, 200, toBody(v))
	}
}

func (a *API) getVersionSchema(w http.ResponseWriter, r *http.Request) {
	if v, ok := a.subjectVersion(w, r, flag(r, "deleted")); ok {
		w.Header().Set("Content-Type", ContentType)
		io.WriteString(w, v.Schema.Text)
	}
}

func (a *API) referencedBy(w http.ResponseWriter, r *http.Request) {
	if v, ok := a.subjectVersion(w, r, false); ok {
		a.json(w, 200, a.r.ReferencedBy(v.Subject, v.Version))
	}
}

func (a *API) deleteVersion(w http.ResponseWriter, r *http.Request) {
	n, ok := a.version(w, r)
	if !ok {
		return
	}
	v, err := a.r.DeleteVersion(r.Context(), r.PathValue("subject"), n, flag(r, "permanent"))
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, v)
}

func (a *API) deleteSubject(w http.ResponseWriter, r *http.Request) {
	vs, err := a.r.DeleteSubject(r.Context(), r.PathValue("subject"), flag(r, "permanent"))
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, vs)
}

func (a *API) id(w http.ResponseWriter, r *http.Request) (*Schema, bool) {
	id, err := strconv.Atoi(r.PathValue("id"))
	if err != nil {
		a.fail(w, r, 404, 40403, "Schema "+r.PathValue("id")+" not found")
		return nil, false
	}
	s, err := a.r.SchemaByID(id)
	if err != nil {
		a.fail(w, r, 404, 40403, fmt.Sprintf("Schema %d not found", id))
		return nil, false
	}
	return s, true
}

func (a *API) schemaByID(w http.ResponseWriter, r *http.Request) {
	if s, ok := a.id(w, r); ok {
		a.json(w, 200, schemaRequest{Schema: s.Text, References: s.References})
	}
}

func (a *API) rawSchemaByID(w http.ResponseWriter, r *http.Request) {
	if s, ok := a.id(w, r); ok {
		w.Header().Set("Content-Type", ContentType)
		io.WriteString(w, s.Text)
	}
}

type subjectVersion struct {
	Subject string `json:"subject"`
	Version int    `json:"version"`
}

func (a *API) versionsOfID(w http.ResponseWriter, r *http.Request) {
	s, ok := a.id(w, r)
	if !ok {
		return
	}
	out := []subjectVersion{}
	for _, v := range a.r.VersionsOfID(s.ID, flag(r, "deleted")) {
		out = append(out, subjectVersion{v.Subject, v.Version})
	}
	a.json(w, 200, out)
}

type compatibilityBody struct {
	IsCompatible bool     `json:"is_compatible"`
	Messages     []string `json:"messages,omitempty"`
}

func (a *API) compatibility(w http.ResponseWriter, r *http.Request) {
	n := Latest
	if r.PathValue("version") != "" {
		var ok bool
		if n, ok = a.version(w, r); !ok {
			return
		}
	}
	req, ok := a.readSchema(w, r)
	if !ok {
		return
	}
	msgs, err := a.r.Check(r.PathValue("subject"), n, req.Schema, req.References)
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	body := compatibilityBody{IsCompatible: len(msgs) == 0}
	if flag(r, "verbose") {
		body.Messages = msgs
		if body.Messages == nil {
			body.Messages = []string{}
		}
	}
	a.json(w, 200, body)
}

// configBody answers GET /config: Confluent's server names the field
// compatibilityLevel, while some clients (hamba/avro's among them) read
// compatibility; both are sent so either kind of client understands it.
type configBody struct {
	CompatibilityLevel Level `json:"compatibilityLevel"`
	Compatibility      Level `json:"compatibility"`
}

func (a *API) getConfig(w http.ResponseWriter, r *http.Request) {
	subj := r.PathValue("subject")
	if subj == "" {
		a.json(w, 200, configBody{a.r.Level(""), a.r.Level("")})
		return
	}
	if l, ok := a.r.SubjectLevel(subj); ok {
		a.json(w, 200, configBody{l, l})
		return
	}
	if flag(r, "defaultToGlobal") {
		a.json(w, 200, configBody{a.r.Level(""), a.r.Level("")})
		return
	}
	a.fail(w, r, 404, 40408, fmt.Sprintf("Subject '%s' does not have subject-level compatibility configured", subj))
}

func (a *API) putConfig(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Compatibility string `json:"compatibility"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		a.fail(w, r, 400, 400, "Unrecognized request body: "+err.Error())
		return
	}
	level, err := ParseLevel(req.Compatibility)
	if err != nil {
		a.failErr(w, r, fmt.Errorf("%w: %v", ErrInvalidCompatibility, err))
		return
	}
	if err := a.r.SetLevel(r.Context(), r.PathValue("subject"), level); err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, map[string]Level{"compatibility": level})
}

func (a *API) deleteConfig(w http.ResponseWriter, r *http.Request) {
	subj := r.PathValue("subject")
	prev := a.r.Level(subj)
	if subj != "" {
		if _, ok := a.r.SubjectLevel(subj); !ok {
			a.fail(w, r, 404, 40408, fmt.Sprintf("Subject '%s' does not have subject-level compatibility configured", subj))
			return
		}
	}
	if err := a.r.DeleteLevel(r.Context(), subj); err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, map[string]Level{"compatibilityLevel": prev})
}

func (a *API) getMode(w http.ResponseWriter, r *http.Request) {
	subj := r.PathValue("subject")
	if subj == "" {
		a.json(w, 200, modeValue{a.r.Mode("")})
		return
	}
	if m, ok := a.r.SubjectMode(subj); ok {
		a.json(w, 200, modeValue{m})
		return
	}
	if flag(r, "defaultToGlobal") {
		a.json(w, 200, modeValue{a.r.Mode("")})
		return
	}
	a.fail(w, r, 404, 40409, fmt.Sprintf("Subject '%s' does not have subject-level mode configured", subj))
}

func (a *API) putMode(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Mode string `json:"mode"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, maxRequestBytes)).Decode(&req); err != nil {
		a.fail(w, r, 400, 400, "Unrecognized request body: "+err.Error())
		return
	}
	m, err := ParseMode(req.Mode)
	if err == nil {
		err = a.r.SetMode(r.Context(), r.PathValue("subject"), m)
	}
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, modeValue{m})
}

func (a *API) deleteMode(w http.ResponseWriter, r *http.Request) {
	m, err := a.r.DeleteMode(r.Context(), r.PathValue("subject"))
	if err != nil {
		a.failErr(w, r, err)
		return
	}
	a.json(w, 200, modeValue{m})
}
