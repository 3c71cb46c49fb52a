// Package valhalla holds Valhalla's contract, openapi.yaml, embedded byte for
// byte so the binary can serve it. The generated code in gen/api embeds the
// same file in parsed form; the request validator uses that one.
package valhalla

import _ "embed"

// OpenAPIYAML is openapi.yaml exactly as committed.
//
//go:embed openapi.yaml
var OpenAPIYAML []byte
