package api

import (
	"errors"
	"net/url"

	"github.com/getkin/kin-openapi/openapi3"
)

// FormatValidators returns the string-format checks the request validator
// must apply on top of kin-openapi's defaults (which check date, date-time,
// byte, ipv4 and ipv6 only): uuid, email and absolute http(s) uri.
func FormatValidators() []openapi3.SchemaValidationOption {
	return []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("uuid", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForUUIDOfRFC4122)),
		openapi3.WithStringFormatValidator("email", openapi3.NewRegexpFormatValidator(openapi3.FormatOfStringForEmail)),
		openapi3.WithStringFormatValidator("uri", openapi3.NewCallbackValidator(func(s string) error {
			u, err := url.Parse(s)
			if err != nil {
				return err
			}
			if u.Scheme == "" || u.Host == "" {
				return errors.New("not an absolute URI")
			}
			return nil
		})),
	}
}
