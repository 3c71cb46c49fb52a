// Package migrations holds the goose migrations that define Valhalla's schema.
// sqlc reads the same files as its schema, so the database and the generated
// queries cannot disagree.
package migrations

import "embed"

// FS holds every migration file, embedded in the binary.
//
//go:embed *.sql
var FS embed.FS
