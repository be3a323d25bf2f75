package connect

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	elog "github.com/eddy-cdc/eddy/log"
	"github.com/eddy-cdc/eddy/log/s3store"
)

// StoreSpec is one entry of `stores`: an object store that topics'
// archives (and, to come, other parts) name.
type StoreSpec struct {
	Name            string `yaml:"name"`
	Type            string `yaml:"type"` // s3 | dir
	Bucket          string `yaml:"bucket"`
	Prefix          string `yaml:"prefix"`
	Region          string `yaml:"region"`
	Endpoint        string `yaml:"endpoint"`
	PathStyle       bool   `yaml:"path_style"`
	AccessKeyID     string `yaml:"access_key_id"`
	SecretAccessKey string `yaml:"secret_access_key"`
	Path            string `yaml:"path"` // type dir

	line  int
	lines map[string]int
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (s *StoreSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain StoreSpec
	lines, err := decodeStrict(n, (*plain)(s), "connect.StoreSpec")
	s.line, s.lines = n.Line, lines
	return err
}

// String keeps the secret out of logs and error messages.
func (s StoreSpec) String() string {
	return fmt.Sprintf("{%s %s bucket %s prefix %s endpoint %s path %s}", s.Name, s.Type, s.Bucket, s.Prefix, s.Endpoint, s.Path)
}

// ArchiveSpec is a topic's `archive` (or the log's, for every topic).
type ArchiveSpec struct {
	Store string `yaml:"store"`
	After string `yaml:"after"` // how old a closed segment is before it goes (default 1h)
	// LocalRetention is how long (a duration) or how much per partition
	// (bytes, such as 10GiB) archived segments stay on local disk too
	// (default 0: deleted locally once archived).
	LocalRetention string `yaml:"local_retention"`

	line  int
	lines map[string]int
}

// UnmarshalYAML refuses unknown keys and keeps each key's line.
func (a *ArchiveSpec) UnmarshalYAML(n *yaml.Node) error {
	type plain ArchiveSpec
	lines, err := decodeStrict(n, (*plain)(a), "connect.ArchiveSpec")
	a.line, a.lines = n.Line, lines
	return err
}

// DefaultArchiveSchedule is when log-archive runs unless a job says.
const DefaultArchiveSchedule = "*/5 * * * *"

var byteSizeRE = regexp.MustCompile(`^(\d+)\s*(B|KB|KiB|MB|MiB|GB|GiB|TB|TiB)?$`)

// parseBytes reads 1073741824, 512MiB, 10GB.
func parseBytes(s string) (int64, bool) {
	m := byteSizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return 0, false
	}
	mult := map[string]int64{"": 1, "B": 1, "KB": 1e3, "KiB": 1 << 10, "MB": 1e6, "MiB": 1 << 20, "GB": 1e9, "GiB": 1 << 30, "TB": 1e12, "TiB": 1 << 40}[m[2]]
	return n * mult, true
}

// archivePolicy is an archive spec as checked: the store's name and the
// bounds (store itself comes with the log).
type archivePolicy struct {
	store          string
	after          time.Duration
	localRetention time.Duration // -1: no time bound
	localBytes     int64         // -1: no size bound
	retention      *time.Duration
}

// check reads the spec; where names the entry for errors (file:line).
func (a *ArchiveSpec) check(path, key string, stores map[string]bool, retention string, retLine int) (archivePolicy, error) {
	at := func(k, format string, args ...any) error {
		line := a.line
		if l, ok := a.lines[k]; ok {
			line = l
		}
		return fmt.Errorf("%s:%d: %s.%s: %s", path, line, key, k, fmt.Sprintf(format, args...))
	}
	p := archivePolicy{store: a.Store, after: time.Hour, localRetention: 0, localBytes: -1}
	if a.Store == "" {
		return p, at("store", "required: the name of one of stores")
	}
	if !stores[a.Store] {
		return p, at("store", "%q is not one of stores", a.Store)
	}
	if a.After != "" {
		d, err := time.ParseDuration(a.After)
		if err != nil || d < 0 {
			return p, at("after", "%q is not a duration such as 10m or 1h", a.After)
		}
		p.after = d
	}
	if v := a.LocalRetention; v != "" {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			p.localRetention = d
		} else if n, ok := parseBytes(v); ok {
			p.localRetention, p.localBytes = -1, n
		} else {
			return p, at("local_retention", "%q is neither a duration such as 24h nor a size such as 10GiB", v)
		}
	}
	if retention != "" {
		if retention == "forever" || retention == "-1" {
			d := time.Duration(-1)
			p.retention = &d
		} else if d, err := time.ParseDuration(retention); err == nil && d > 0 {
			p.retention = &d
		} else {
			return p, fmt.Errorf("%s:%d: %s.archive_retention: %q is not a duration such as 8760h, or forever", path, retLine, strings.TrimSuffix(key, ".archive"), retention)
		}
	}
	return p, nil
}

// checkArchive checks stores and the archive specs, and adds the
// log-archive job when an archive is set and no job runs it.
func (c *Config) checkArchive(path string, cat *Catalog) error {
	names := map[string]bool{}
	for i := range c.Stores {
		s := &c.Stores[i]
		key := fmt.Sprintf("stores[%d]", i)
		at := func(k, format string, args ...any) error {
			line := s.line
			if l, ok := s.lines[k]; ok {
				line = l
			}
			return fmt.Errorf("%s:%d: %s.%s: %s", path, line, key, k, fmt.Sprintf(format, args...))
		}
		if s.Name == "" {
			return at("name", "required")
		}
		if names[s.Name] {
			return at("name", "store %q is declared twice", s.Name)
		}
		names[s.Name] = true
		switch s.Type {
		case "s3":
			if s.Bucket == "" {
				return at("bucket", "required for a store of type s3")
			}
			if (s.AccessKeyID == "") != (s.SecretAccessKey == "") {
				return at("access_key_id", "access_key_id and secret_access_key go together (neither: the SDK's default chain)")
			}
		case "dir":
			if s.Path == "" {
				return at("path", "required for a store of type dir")
			}
		case "":
			return at("type", "required: s3 or dir")
		default:
			return at("type", "%q is not s3 or dir", s.Type)
		}
	}
	c.archive = map[string]archivePolicy{}
	archived := false
	if c.Log.Archive != nil {
		p, err := c.Log.Archive.check(path, "log.archive", names, c.Log.ArchiveRetention, c.Log.line)
		if err != nil {
			return err
		}
		c.archive[""] = p
		archived = true
	} else if c.Log.ArchiveRetention != "" {
		return fmt.Errorf("%s:%d: log.archive_retention: set without log.archive", path, c.Log.line)
	}
	for i, t := range c.Topics {
		if t.Archive == nil {
			if t.ArchiveRetention != "" {
				return fmt.Errorf("%s:%d: topics[%d].archive_retention: set without an archive", path, t.line, i)
			}
			continue
		}
		p, err := t.Archive.check(path, fmt.Sprintf("topics[%d].archive", i), names, t.ArchiveRetention, t.line)
		if err != nil {
			return err
		}
		c.archive[t.Name] = p
		archived = true
	}
	if !archived {
		return nil
	}
	for _, j := range c.Jobs {
		if j.Plugin == "log-archive" {
			return nil
		}
	}
	params, err := NewParams(cat.Plugin("log-archive"), map[string]any{})
	if err != nil {
		return fmt.Errorf("%s: the log-archive job: %w", path, err)
	}
	c.Jobs = append(c.Jobs, JobSpec{Name: "log-archive", Plugin: "log-archive", Schedule: DefaultArchiveSchedule, params: params})
	return nil
}

// ArchiveStores opens the stores the config declares (none reaches its
// server here: a store that is down must not keep the log from opening).
func (c *Config) ArchiveStores(ctx context.Context) (map[string]elog.ArchiveStore, error) {
	out := map[string]elog.ArchiveStore{}
	for _, s := range c.Stores {
		switch s.Type {
		case "s3":
			st, err := s3store.New(ctx, s3store.Config{Bucket: s.Bucket, Prefix: s.Prefix, Region: s.Region, Endpoint: s.Endpoint,
				PathStyle: s.PathStyle, AccessKeyID: s.AccessKeyID, SecretAccessKey: s.SecretAccessKey})
			if err != nil {
				return nil, fmt.Errorf("store %s: %w", s.Name, err)
			}
			out[s.Name] = st
		case "dir":
			st, err := elog.NewDirStore(s.Path)
			if err != nil {
				return nil, fmt.Errorf("store %s: %w", s.Name, err)
			}
			out[s.Name] = st
		}
	}
	return out, nil
}

// ArchivePolicies is the log's archive policy per topic: the topic's own
// archive, else the log's (for topics Eddy keeps for itself only their
// own). The archive keeps segments for archive_retention, else for the
// topic's retention (a compacted topic's: forever, as compacted).
func (c *Config) ArchivePolicies(stores map[string]elog.ArchiveStore) elog.ArchivePolicies {
	return func(topic string, cfg elog.TopicConfig) (elog.ArchivePolicy, bool) {
		p, ok := c.archive[topic]
		if !ok && !cfg.Internal {
			p, ok = c.archive[""]
		}
		if !ok || stores[p.store] == nil {
			return elog.ArchivePolicy{}, false
		}
		ret := time.Duration(cfg.Retention)
		if cfg.Cleanup == elog.CleanupCompact {
			ret = -1 // compaction, not time, bounds a compacted topic (Kafka's cleanup.policy=compact)
		}
		if p.retention != nil {
			ret = *p.retention
		}
		return elog.ArchivePolicy{StoreName: p.store, Store: stores[p.store], After: p.after, Retention: ret,
			LocalRetention: p.localRetention, LocalRetentionBytes: p.localBytes}, true
	}
}

// Archived says whether any topic is archived.
func (c *Config) Archived() bool { return len(c.archive) > 0 }
