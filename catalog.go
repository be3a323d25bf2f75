// Package eddy holds what the binary embeds from the repository's root:
// plugins.yaml, the catalog of every source, sink, transform and job, with
// each parameter's type, default, whether it is required or secret, and its
// doc. The connect package parses and enforces it.
package eddy

import _ "embed"

//go:embed plugins.yaml
var pluginsYAML string

// PluginsYAML returns the text of plugins.yaml as built into the binary.
func PluginsYAML() string { return pluginsYAML }
