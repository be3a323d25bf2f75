package connect

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/eddy-cdc/eddy/internal/access"
	elog "github.com/eddy-cdc/eddy/log"
)

// Config is eddy.yaml: where the log lives, the admin API, topic defaults
// and declared topics. Connectors join it with the connect runtime.
type Config struct {
	DataDir  string         `yaml:"data_dir"`
	API      ListenerConfig `yaml:"api"`
	Registry ListenerConfig `yaml:"registry"`
	Log      TopicSpec      `yaml:"log"`    // defaults for every topic
	Topics   []TopicSpec    `yaml:"topics"` // created at start when absent
	// Connectors are the pipelines `eddy run` starts; Jobs run on schedules.
	Connectors []ConnectorSpec `yaml:"connectors"`
	Jobs       []JobSpec       `yaml:"jobs"`
	// Stores are object stores, named once, that topics' archives use;
	// ArchiveCacheBytes bounds the cache of archived segments that reads
	// below the local start go through (default 64 MiB).
	Stores            []StoreSpec `yaml:"stores"`
	ArchiveCacheBytes int64       `yaml:"archive_cache_bytes"`
	// ShutdownTimeout bounds how long SIGTERM waits for tasks to drain
	// (default 30s).
	ShutdownTimeout string `yaml:"shutdown_timeout"`
	// RetentionProtects is sinks (default): retention keeps what the
	// worker's sink connectors have not consumed, up to
	// RetentionProtectBytes per partition (default 10 GiB; 0 no bound);
	// none: retention alone decides.
	RetentionProtects     string `yaml:"retention_protects"`
	RetentionProtectBytes *int64 `yaml:"retention_protect_bytes"`

	shutdown time.Duration
	catalog  *Catalog
	lines    map[string]int           // where each top-level key was written
	defaults elog.TopicConfig         // the log section over Eddy's defaults
	archive  map[string]archivePolicy // by topic; "" for the log's
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	lines, err := decodeStrict(n, (*plain)(c), "connect.Config")
	c.lines = lines
	return err
}

// ListenerConfig is one listener of `eddy run` (the admin API, the schema
// registry, and the Kafka listener to come): its address, TLS, and who may
// come in, each with a role.
type ListenerConfig struct {
	Listen string `yaml:"listen"` // default 127.0.0.1 and the listener's port
	// Token is a bearer token with every right (the admin API's admin
	// role, the registry's write role).
	Token       string     `yaml:"token"`
	TLSCert     string     `yaml:"tls_cert"`      // PEM certificate file; with tls_key the listener serves TLS
	TLSKey      string     `yaml:"tls_key"`       // PEM key file
	TLSClientCA string     `yaml:"tls_client_ca"` // PEM CA bundle: clients must present a certificate it signed
	Users       []UserSpec `yaml:"users"`

	lines map[string]int // where each key was written
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (c *ListenerConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain ListenerConfig
	lines, err := decodeStrict(n, (*plain)(c), "connect.ListenerConfig")
	c.lines = lines
	return err
}

// String keeps the secrets out of logs and error messages.
func (c ListenerConfig) String() string {
	tok := ""
	if c.Token != "" {
		tok = "<redacted>"
	}
	return fmt.Sprintf("{listen %s, token %s, tls_cert %s, tls_key %s, tls_client_ca %s, users %v}", c.Listen, tok, c.TLSCert, c.TLSKey, c.TLSClientCA, c.Users)
}

// Authenticated says whether the listener asks for credentials.
func (c ListenerConfig) Authenticated() bool { return c.Token != "" || len(c.Users) > 0 }

// Credentials are the listener's users for its door policy: token as a
// user named "token" with the write role.
func (c ListenerConfig) Credentials() []access.User {
	var out []access.User
	if c.Token != "" {
		out = append(out, access.User{Name: "token", Token: c.Token, Role: access.RoleWrite})
	}
	for _, u := range c.Users {
		out = append(out, access.User{Name: u.Name, Password: u.Password, Token: u.Token, Role: u.role})
	}
	return out
}

// TLS is the listener's TLS files.
func (c ListenerConfig) TLS() access.TLSFiles {
	return access.TLSFiles{Cert: c.TLSCert, Key: c.TLSKey, ClientCA: c.TLSClientCA}
}

// UserSpec is one credential of a listener: HTTP Basic with name and
// password, a bearer token, or both, and its role.
type UserSpec struct {
	Name     string `yaml:"name"`
	Password string `yaml:"password"`
	Token    string `yaml:"token"`
	Role     string `yaml:"role"`

	role  access.Role
	lines map[string]int
	line  int
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (u *UserSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain UserSpec
	lines, err := decodeStrict(n, (*plain)(u), "connect.UserSpec")
	u.lines, u.line = lines, n.Line
	return err
}

// String names the user and its role, never its secrets.
func (u UserSpec) String() string { return fmt.Sprintf("{%s %s}", u.Name, u.Role) }

// checkListener fills the listener's defaults and checks it: TLS files in
// pairs and present, users named once, each with a secret and one of
// roles (name -> role).
func checkListener(path, key string, c *ListenerConfig, port string, roles map[string]access.Role) error {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:" + port
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return fmt.Errorf("%s:%d: %s.tls_cert: tls_cert and tls_key go together", path, max(c.lines["tls_cert"], c.lines["tls_key"]), key)
	}
	if c.TLSClientCA != "" && c.TLSCert == "" {
		return fmt.Errorf("%s:%d: %s.tls_client_ca: client certificates need TLS: set tls_cert and tls_key too", path, c.lines["tls_client_ca"], key)
	}
	for _, f := range []struct{ key, path string }{{"tls_cert", c.TLSCert}, {"tls_key", c.TLSKey}, {"tls_client_ca", c.TLSClientCA}} {
		if f.path != "" {
			if _, err := os.Stat(f.path); err != nil {
				return fmt.Errorf("%s:%d: %s.%s: %v", path, c.lines[f.key], key, f.key, err)
			}
		}
	}
	names := map[string]bool{"token": c.Token != ""}
	tokens := map[string]bool{c.Token: c.Token != ""}
	var valid []string
	for r := range roles {
		valid = append(valid, r)
	}
	sort.Strings(valid)
	for i := range c.Users {
		u := &c.Users[i]
		where := fmt.Sprintf("%s:%d: %s.users[%d]", path, u.line, key, i)
		switch {
		case u.Name == "":
			return fmt.Errorf("%s.name: required", where)
		case names[u.Name]:
			return fmt.Errorf("%s.name: %q is taken (\"token\" is the listener's own token)", where, u.Name)
		case u.Password == "" && u.Token == "":
			return fmt.Errorf("%s: user %s needs a password (HTTP Basic) or a token (bearer), or both", where, u.Name)
		case u.Token != "" && tokens[u.Token]:
			return fmt.Errorf("%s.token: user %s has the token of another credential", where, u.Name)
		}
		role, ok := roles[u.Role]
		if !ok {
			return fmt.Errorf("%s.role: %q is not one of %s", where, u.Role, strings.Join(valid, ", "))
		}
		u.role = role
		names[u.Name], tokens[u.Token] = true, u.Token != ""
	}
	return nil
}

// TopicSpec is a topic's config as YAML writes it (durations as "168h").
type TopicSpec struct {
	Name               string `yaml:"name"`
	Partitions         int    `yaml:"partitions"`
	Cleanup            string `yaml:"cleanup"`
	Retention          string `yaml:"retention"`
	RetentionBytes     int64  `yaml:"retention_bytes"`
	SegmentBytes       int64  `yaml:"segment_bytes"`
	SegmentAge         string `yaml:"segment_age"`
	DeleteRetention    string `yaml:"delete_retention"`
	Fsync              string `yaml:"fsync"`
	FlushInterval      string `yaml:"flush_interval"`
	MaxRecordBytes     int    `yaml:"max_record_bytes"`
	MaxBatchBytes      int    `yaml:"max_batch_bytes"`
	Compression        string `yaml:"compression"`
	IndexIntervalBytes int64  `yaml:"index_interval_bytes"`
	// Archive sends the topic's cold segments to a store; ArchiveRetention
	// is how long the archive keeps them (default: the topic's retention).
	Archive          *ArchiveSpec `yaml:"archive"`
	ArchiveRetention string       `yaml:"archive_retention"`

	line int
}

// UnmarshalYAML refuses unknown keys and keeps the topic's line.
func (t *TopicSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain TopicSpec
	_, err := decodeStrict(n, (*plain)(t), "connect.TopicSpec")
	t.line = n.Line
	return err
}

// decodeStrict decodes a mapping node into dst (a pointer to a struct),
// refusing keys that dst's yaml tags do not name, and returns the line of
// each key. A Node's Decode does not inherit the decoder's KnownFields, so
// every nested section that wants strict keys decodes through here.
func decodeStrict(n *yaml.Node, dst any, typeName string) (map[string]int, error) {
	lines := map[string]int{}
	if n.Kind == yaml.MappingNode {
		known := yamlKeys(reflect.TypeOf(dst).Elem())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if !known[k.Value] {
				return lines, fmt.Errorf("line %d: field %s not found in type %s", k.Line, k.Value, typeName)
			}
			lines[k.Value] = k.Line
		}
	}
	return lines, n.Decode(dst)
}

// TopicConfig converts the spec; errors name the key.
func (t TopicSpec) TopicConfig() (elog.TopicConfig, error) {
	c := elog.TopicConfig{
		Partitions: t.Partitions, Cleanup: elog.CleanupPolicy(t.Cleanup), RetentionBytes: t.RetentionBytes,
		SegmentBytes: t.SegmentBytes, Fsync: elog.FsyncPolicy(t.Fsync), MaxRecordBytes: t.MaxRecordBytes,
		MaxBatchBytes: t.MaxBatchBytes, Compression: t.Compression, IndexIntervalBytes: t.IndexIntervalBytes,
	}
	for _, d := range []struct {
		key, v  string
		dst     *elog.Duration
		forever bool
	}{
		{"retention", t.Retention, &c.Retention, true},
		{"segment_age", t.SegmentAge, &c.SegmentAge, false},
		{"delete_retention", t.DeleteRetention, &c.DeleteRetention, false},
		{"flush_interval", t.FlushInterval, &c.FlushInterval, false},
	} {
		if d.v == "" {
			continue
		}
		if d.forever && (d.v == "forever" || d.v == "-1") {
			*d.dst = -1
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil {
			return c, fmt.Errorf("%s: %q is not a duration such as 90s, 12h or 168h", d.key, d.v)
		}
		*d.dst = elog.Duration(v)
	}
	return c, nil
}

var yamlLineRE = regexp.MustCompile(`line (\d+): (.*)`)
var unknownFieldRE = regexp.MustCompile(`^field (\S+) not found in type .*$`)

// LoadConfig reads and checks eddy.yaml against the built-in catalog.
func LoadConfig(path string) (*Config, error) {
	cat, err := BuiltinCatalog()
	if err != nil {
		return nil, err
	}
	return LoadConfigWith(path, cat)
}

// LoadConfigWith reads and checks eddy.yaml. Every error names the file, the
// line and the key. ${VAR} and ${VAR:-default} are replaced from the
// environment first; ${file:PATH} in a value is replaced by the file's
// content once the YAML is parsed, so a secret with any characters in it
// stays one string value.
func LoadConfigWith(path string, cat *Catalog) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	text, err := interpolate(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	cfg := &Config{}
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader([]byte(text)))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, yamlError(path, err)
	}
	if err := resolveFiles(&root); err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	if err := root.Decode(cfg); err != nil {
		return nil, yamlError(path, err)
	}
	if cfg.DataDir == "" {
		return nil, fmt.Errorf("%s:1: data_dir: required", path)
	}
	if err := checkListener(path, "api", &cfg.API, "8083", map[string]access.Role{"read": access.RoleRead, "admin": access.RoleWrite}); err != nil {
		return nil, err
	}
	if err := checkListener(path, "registry", &cfg.Registry, "8081", map[string]access.Role{"read": access.RoleRead, "write": access.RoleWrite}); err != nil {
		return nil, err
	}
	logCfg, err := cfg.Log.TopicConfig()
	if err != nil {
		return nil, fmt.Errorf("%s:%d: log.%w", path, cfg.Log.line, err)
	}
	def := elog.WithDefaultsOf(logCfg, elog.DefaultTopicConfig())
	cfg.defaults = def
	if err := def.Validate(); err != nil {
		return nil, fmt.Errorf("%s:%d: log.%s", path, cfg.Log.line, strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	seen := map[string]bool{}
	for i, t := range cfg.Topics {
		where := fmt.Sprintf("%s:%d: topics[%d]", path, t.line, i)
		if err := elog.ValidateTopicName(t.Name); err != nil {
			return nil, fmt.Errorf("%s.name: %w", where, err)
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("%s.name: topic %q is declared twice", where, t.Name)
		}
		seen[t.Name] = true
		tc, err := t.TopicConfig()
		if err != nil {
			return nil, fmt.Errorf("%s.%w", where, err)
		}
		if err := elog.WithDefaultsOf(tc, def).Validate(); err != nil {
			return nil, fmt.Errorf("%s.%s", where, strings.ReplaceAll(err.Error(), "\n", "; "))
		}
	}
	if err := cfg.checkConnectors(path, cat); err != nil {
		return nil, err
	}
	if err := cfg.checkArchive(path, cat); err != nil {
		return nil, err
	}
	if cfg.ArchiveCacheBytes < 0 {
		return nil, fmt.Errorf("%s:%d: archive_cache_bytes: %d is negative", path, cfg.lines["archive_cache_bytes"], cfg.ArchiveCacheBytes)
	}
	cfg.catalog = cat
	cfg.shutdown = 30 * time.Second
	if cfg.ShutdownTimeout != "" {
		d, err := time.ParseDuration(cfg.ShutdownTimeout)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("%s:%d: shutdown_timeout: %q is not a duration such as 30s", path, cfg.lines["shutdown_timeout"], cfg.ShutdownTimeout)
		}
		cfg.shutdown = d
	}
	switch cfg.RetentionProtects {
	case "":
		cfg.RetentionProtects = "sinks"
	case "sinks", "none":
	default:
		return nil, fmt.Errorf("%s:%d: retention_protects: %q is not sinks or none", path, cfg.lines["retention_protects"], cfg.RetentionProtects)
	}
	if b := cfg.RetentionProtectBytes; b != nil && *b < 0 {
		return nil, fmt.Errorf("%s:%d: retention_protect_bytes: %d is negative (0 is no bound)", path, cfg.lines["retention_protect_bytes"], *b)
	}
	return cfg, nil
}

// DefaultRetentionProtectBytes is how much of a partition retention keeps
// for sinks that have not consumed it, unless retention_protect_bytes says.
const DefaultRetentionProtectBytes = 10 << 30

// RetentionProtection says whether retention keeps what sinks still need,
// and up to how many bytes a partition.
func (c *Config) RetentionProtection() (bool, int64) {
	n := int64(DefaultRetentionProtectBytes)
	if c.RetentionProtectBytes != nil {
		n = *c.RetentionProtectBytes
	}
	return c.RetentionProtects != "none", n
}

// Catalog is the plugin catalog the config was checked against.
func (c *Config) Catalog() *Catalog { return c.catalog }

// Shutdown is how long a stop waits for tasks to drain.
func (c *Config) Shutdown() time.Duration { return c.shutdown }

// LogDefaults is the config topics take for fields they leave out.
func (c *Config) LogDefaults() elog.TopicConfig { return c.defaults }

func yamlError(path string, err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var lines []string
		for _, e := range te.Errors {
			lines = append(lines, positioned(path, e))
		}
		return errors.New(strings.Join(lines, "\n"))
	}
	return errors.New(positioned(path, strings.TrimPrefix(err.Error(), "yaml: ")))
}

func positioned(path, msg string) string {
	m := yamlLineRE.FindStringSubmatch(msg)
	if m == nil {
		return path + ": " + msg
	}
	rest := m[2]
	if u := unknownFieldRE.FindStringSubmatch(rest); u != nil {
		return fmt.Sprintf("%s:%s: %s: unknown key", path, m[1], u[1])
	}
	return fmt.Sprintf("%s:%s: %s", path, m[1], rest)
}

var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// interpolate replaces ${VAR} and ${VAR:-default}; an unset VAR without a
// default is an error naming the line. Comments are left alone, so a
// commented-out line may mention a variable that is not set.
func interpolate(s string) (string, error) {
	var errs []error
	lines := strings.Split(s, "\n")
	for i, line := range lines {
		code, comment := splitComment(line)
		// $${...} is a literal ${...}, for values that use that syntax
		// themselves (a sink's table template); $${file:...} stays as it
		// is for resolveFiles, which makes it literal in its turn.
		parts := strings.Split(code, "$${")
		for j := range parts {
			parts[j] = envRE.ReplaceAllStringFunc(parts[j], func(m string) string {
				g := envRE.FindStringSubmatch(m)
				if v, ok := os.LookupEnv(g[1]); ok {
					return v
				}
				if g[2] != "" {
					return g[3]
				}
				errs = append(errs, fmt.Errorf("line %d: environment variable %s is not set", i+1, g[1]))
				return m
			})
		}
		var b strings.Builder
		for j, p := range parts {
			if j > 0 {
				if strings.HasPrefix(p, "file:") {
					b.WriteString("$${")
				} else {
					b.WriteString("${")
				}
			}
			b.WriteString(p)
		}
		lines[i] = b.String() + comment
	}
	if len(errs) > 0 {
		return "", errs[0]
	}
	return strings.Join(lines, "\n"), nil
}

var fileRefRE = regexp.MustCompile(`\$?\$\{file:([^}]*)\}`)

// resolveFiles replaces ${file:PATH} in every scalar under n with the
// content of the file at PATH, one trailing newline cut, as Kafka's
// FileConfigProvider does; such a value is a string whatever it holds.
// $${file:...} is a literal ${file:...}. A missing or unreadable file is
// an error naming the line (and the path, never the content).
func resolveFiles(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "{file:") {
		var err error
		n.Value = fileRefRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			if strings.HasPrefix(m, "$$") {
				return m[1:]
			}
			path := fileRefRE.FindStringSubmatch(m)[1]
			b, rerr := os.ReadFile(path)
			if rerr != nil && err == nil {
				err = fmt.Errorf("%d: ${file:%s}: %w", n.Line, path, rerr)
			}
			return strings.TrimSuffix(strings.TrimSuffix(string(b), "\n"), "\r")
		})
		n.Tag = "!!str"
		return err
	}
	for _, c := range n.Content {
		if err := resolveFiles(c); err != nil {
			return err
		}
	}
	return nil
}

// splitComment cuts a YAML line at its comment: a # at the start or after
// a space or tab, outside quotes.
func splitComment(line string) (string, string) {
	var quote byte
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == '#' && (i == 0 || line[i-1] == ' ' || line[i-1] == '\t'):
			return line[:i], line[i:]
		}
	}
	return line, ""
}

// yamlKeys lists the yaml keys of a struct type's fields.
func yamlKeys(t reflect.Type) map[string]bool {
	keys := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name != "" && name != "-" {
			keys[name] = true
		}
	}
	return keys
}
