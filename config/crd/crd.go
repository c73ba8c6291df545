// Package crd embeds the CustomResourceDefinitions that `make generate`
// writes into bases/, so that commands which check objects offline
// (metrics-operator validate) use the very schemas the API server does.
package crd

import "embed"

// Bases holds bases/*.yaml, one CustomResourceDefinition per file.
//
//go:embed bases/*.yaml
var Bases embed.FS
