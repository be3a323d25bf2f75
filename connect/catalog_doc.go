package connect

import (
	"bytes"
	"fmt"
	"strings"
)

// TypeText is the parameter's type for people: enums list their values.
func (prm *Param) TypeText() string {
	switch {
	case prm.Type == TypeEnum:
		return strings.Join(prm.Values, "|")
	case prm.Secret:
		return prm.Type + ", secret"
	}
	return prm.Type
}

// DefaultText is the default for people, or "required".
func (prm *Param) DefaultText() string {
	if prm.Required {
		return "required"
	}
	switch d := prm.Default.(type) {
	case string:
		if d == "" {
			return `""`
		}
		return d
	case []any:
		parts := make([]string, len(d))
		for i, e := range d {
			parts[i] = fmt.Sprint(e)
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return fmt.Sprint(prm.Default)
}

// Markdown renders the catalog as docs/plugins.md.
func (c *Catalog) Markdown() []byte {
	var b bytes.Buffer
	b.WriteString("# Eddy plugins\n\n")
	b.WriteString("<!-- Generated from plugins.yaml by `eddy plugins --markdown`; do not edit. -->\n\n")
	b.WriteString("Connectors name a source or sink plugin in `plugin` and set its parameters under `config`; transforms name theirs in `type`; jobs in `plugin`, with a `schedule`. Unknown parameters and values of the wrong type are errors naming the file, line and key.\n\n")
	kinds := []struct{ kind, title string }{{KindSource, "Sources"}, {KindSink, "Sinks"}, {KindTransform, "Transforms"}, {KindJob, "Jobs"}}
	for _, k := range kinds {
		fmt.Fprintf(&b, "## %s\n\n", k.title)
		for _, name := range c.Names(k.kind) {
			p := c.Plugin(name)
			fmt.Fprintf(&b, "### %s\n\n%s\n\n", p.Name, strings.TrimSpace(p.Description))
			if len(p.Params) == 0 {
				b.WriteString("No parameters.\n\n")
				continue
			}
			b.WriteString("| Parameter | Type | Default | Description |\n|---|---|---|---|\n")
			for _, prm := range p.Params {
				doc := strings.Join(strings.Fields(prm.Doc), " ")
				fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", prm.Name, cell(prm.TypeText()), cell(prm.DefaultText()), cell(doc))
			}
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
