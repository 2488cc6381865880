package client_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	gateway "github.com/spotlight/gateway"
	"github.com/spotlight/gateway/client"
)

// TestRequiredRequestFieldsAreValues: a property that a request body
// requires is a plain value in the generated type, not an optional pointer
// a caller can leave nil and get a 400 for. CreateCalDAVConnectionRequest's
// app_password was a *string (oapi-codegen makes writeOnly properties
// optional), the one required field a caller had to take the address of.
// Every request-body schema of the spec must be in the table.
func TestRequiredRequestFieldsAreValues(t *testing.T) {
	t.Parallel()
	types := map[string]reflect.Type{
		"CreateBookingRequest":            reflect.TypeFor[client.CreateBookingRequest](),
		"RescheduleBookingRequest":        reflect.TypeFor[client.RescheduleBookingRequest](),
		"CancelBookingRequest":            reflect.TypeFor[client.CancelBookingRequest](),
		"MentorScheduleInput":             reflect.TypeFor[client.MentorScheduleInput](),
		"UpdateGoogleConnectionRequest":   reflect.TypeFor[client.UpdateGoogleConnectionRequest](),
		"CompleteGoogleConnectionRequest": reflect.TypeFor[client.CompleteGoogleConnectionRequest](),
		"CreateCalDAVConnectionRequest":   reflect.TypeFor[client.CreateCalDAVConnectionRequest](),
		"UpdateCalDAVConnectionRequest":   reflect.TypeFor[client.UpdateCalDAVConnectionRequest](),
		"ProviderCredentialsInput":        reflect.TypeFor[client.ProviderCredentialsInput](),
	}
	doc, err := openapi3.NewLoader().LoadFromData(gateway.OpenAPI)
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.RequestBody == nil || op.Extensions["x-raw-body"] == true {
				continue
			}
			for ct, media := range op.RequestBody.Value.Content {
				name := strings.TrimPrefix(media.Schema.Ref, "#/components/schemas/")
				typ, ok := types[name]
				if !ok {
					t.Errorf("%s %s %s: request body %q is not in the table", method, path, ct, media.Schema.Ref)
					continue
				}
				checked++
				for _, prop := range media.Schema.Value.Required {
					f, ok := fieldByJSONName(typ, prop)
					if !ok {
						t.Errorf("%s: no field for required %q", name, prop)
						continue
					}
					if f.Type.Kind() == reflect.Pointer {
						t.Errorf("%s.%s (%q, required) is %s, want a value", name, f.Name, prop, f.Type)
					}
				}
			}
		}
	}
	if checked < len(types) {
		t.Errorf("checked %d request bodies, want at least %d", checked, len(types))
	}
}

func fieldByJSONName(typ reflect.Type, name string) (reflect.StructField, bool) {
	for f := range typ.Fields() {
		if tag, _, _ := strings.Cut(f.Tag.Get("json"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}
