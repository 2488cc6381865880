package api

import (
	"errors"
	"net/url"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
)

// FormatValidators returns the string-format checks the request validator
// must apply on top of kin-openapi's defaults (which check date, date-time,
// byte, ipv4 and ipv6 only): uuid, email, absolute http(s) uri, and a
// date-time the generated types can hold.
func FormatValidators() []openapi3.SchemaValidationOption {
	return []openapi3.SchemaValidationOption{
		openapi3.WithStringFormatValidator("date-time", openapi3.NewCallbackValidator(dateTime)),
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

// dateTime checks kin-openapi's RFC 3339 date-time and that Go's time.Time
// reads it: RFC 3339 allows a leap second (14:59:60), which time.Time
// cannot hold, so the handler's decoder would refuse the request after the
// validator had passed it, with a bare 400 naming no field. The message
// does not quote the value.
func dateTime(s string) error {
	if def, ok := openapi3.SchemaStringFormats["date-time"]; ok {
		if err := def.Validate(s); err != nil {
			return err
		}
	}
	var t time.Time
	if err := t.UnmarshalText([]byte(s)); err != nil {
		var pe *time.ParseError
		switch {
		case errors.As(err, &pe) && strings.HasPrefix(pe.Message, ": second out of range"):
			return errors.New("second out of range: leap seconds are not accepted")
		case errors.As(err, &pe) && pe.Message != "":
			return errors.New(strings.TrimPrefix(pe.Message, ": "))
		}
		return errors.New("not an RFC 3339 date-time")
	}
	return nil
}
