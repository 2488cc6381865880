// Package gateway holds the OpenAPI description of the Spotlight integration
// gateway, the one source of truth for its public API. The service itself
// lives in cmd/gateway and internal/; generated server types are in api/ and
// the Go client other services import is in client/.
package gateway

import _ "embed"

// OpenAPI is openapi.yaml, byte for byte, served at GET /openapi.yaml.
//
//go:embed openapi.yaml
var OpenAPI []byte
