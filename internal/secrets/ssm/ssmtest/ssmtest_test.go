package ssmtest_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awsssm "github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"
	"github.com/aws/smithy-go"

	"github.com/spotlight/gateway/internal/secrets/ssm/ssmtest"
)

func start(t *testing.T, opts ssmtest.Options) (*ssmtest.Server, *httptest.Server) {
	t.Helper()
	sim := ssmtest.New(opts)
	srv := httptest.NewServer(sim)
	t.Cleanup(srv.Close)
	return sim, srv
}

func client(srv *httptest.Server) *awsssm.Client {
	return awsssm.NewFromConfig(aws.Config{
		Region:      ssmtest.DefaultRegion,
		Credentials: credentials.NewStaticCredentialsProvider(ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey, ""),
		HTTPClient:  srv.Client(),
		Retryer:     func() aws.Retryer { return aws.NopRetryer{} },
	}, func(o *awsssm.Options) { o.BaseEndpoint = aws.String(srv.URL) })
}

// send posts a JSON 1.1 request, signed with the given credentials unless
// sign is false, and returns status and decoded error type.
func send(t *testing.T, srv *httptest.Server, target, body string, mutate func(*http.Request), sign bool, akid, secret string, at time.Time) (int, string, map[string]any) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	if sign {
		sum := sha256.Sum256([]byte(body))
		err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: akid, SecretAccessKey: secret},
			req, hex.EncodeToString(sum[:]), "ssm", ssmtest.DefaultRegion, at)
		if err != nil {
			t.Fatal(err)
		}
	}
	if mutate != nil {
		mutate(req)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	typ, _ := m["__type"].(string)
	return resp.StatusCode, typ, m
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	_, srv := start(t, ssmtest.Options{})
	now := time.Now()
	body := `{"Name":"/a/b"}`
	tests := []struct {
		name       string
		sign       bool
		akid, sec  string
		at         time.Time
		mutate     func(*http.Request)
		wantStatus int
		wantType   string
	}{
		{name: "valid", sign: true, at: now, wantStatus: 400, wantType: "ParameterNotFound"},
		{name: "missing", sign: false, wantStatus: 400, wantType: "MissingAuthenticationTokenException"},
		{name: "malformed", sign: true, at: now, mutate: func(r *http.Request) { r.Header.Set("Authorization", "Bearer abc") }, wantStatus: 400, wantType: "IncompleteSignatureException"},
		{name: "unknown access key", sign: true, akid: "AKIAUNKNOWN", at: now, wantStatus: 400, wantType: "UnrecognizedClientException"},
		{name: "wrong secret", sign: true, sec: "wrong", at: now, wantStatus: 400, wantType: "InvalidSignatureException"},
		{name: "expired", sign: true, at: now.Add(-time.Hour), wantStatus: 400, wantType: "InvalidSignatureException"},
		{name: "body changed after signing", sign: true, at: now, mutate: func(r *http.Request) {
			r.Body = io.NopCloser(strings.NewReader(`{"Name":"/a/c"}`))
		}, wantStatus: 400, wantType: "InvalidSignatureException"},
		{name: "target changed after signing", sign: true, at: now, mutate: func(r *http.Request) {
			r.Header.Set("X-Amz-Target", "AmazonSSM.DeleteParameter")
		}, wantStatus: 400, wantType: "InvalidSignatureException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			akid, sec := ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey
			if tc.akid != "" {
				akid = tc.akid
			}
			if tc.sec != "" {
				sec = tc.sec
			}
			status, typ, _ := send(t, srv, "AmazonSSM.GetParameter", body, tc.mutate, tc.sign, akid, sec, tc.at)
			if status != tc.wantStatus || typ != tc.wantType {
				t.Errorf("got %d %s, want %d %s", status, typ, tc.wantStatus, tc.wantType)
			}
		})
	}
}

func TestRequestShape(t *testing.T) {
	t.Parallel()
	_, srv := start(t, ssmtest.Options{})
	now := time.Now()
	k, s := ssmtest.DefaultAccessKeyID, ssmtest.DefaultSecretAccessKey
	const jsonCT = "application/x-amz-json-1.1"
	tests := []struct {
		name, target, ct, body string
		wantType               string
	}{
		{"unknown operation", "AmazonSSM.LaunchRocket", jsonCT, `{}`, "UnknownOperationException"},
		{"wrong content type", "AmazonSSM.GetParameter", "application/json", `{"Name":"/a"}`, "SerializationException"},
		{"unknown field", "AmazonSSM.GetParameter", jsonCT, `{"Name":"/a","Bogus":1}`, "SerializationException"},
		{"bad name", "AmazonSSM.GetParameter", jsonCT, `{"Name":"/a b"}`, "ValidationException"},
		{"aws prefix", "AmazonSSM.PutParameter", jsonCT, `{"Name":"/aws/x","Value":"v","Type":"String"}`, "ValidationException"},
		{"no type on create", "AmazonSSM.PutParameter", jsonCT, `{"Name":"/x/y","Value":"v"}`, "ValidationException"},
		{"empty value", "AmazonSSM.PutParameter", jsonCT, `{"Name":"/x/y","Value":"","Type":"String"}`, "ValidationException"},
		{"max results", "AmazonSSM.GetParametersByPath", jsonCT, `{"Path":"/x","MaxResults":11}`, "ValidationException"},
		{"bad token", "AmazonSSM.GetParametersByPath", jsonCT, `{"Path":"/x","NextToken":"zzz"}`, "InvalidNextToken"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req, _ := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader(tc.body))
			req.Header.Set("Content-Type", tc.ct)
			req.Header.Set("X-Amz-Target", tc.target)
			sum := sha256.Sum256([]byte(tc.body))
			if err := v4.NewSigner().SignHTTP(t.Context(), aws.Credentials{AccessKeyID: k, SecretAccessKey: s}, req, hex.EncodeToString(sum[:]), "ssm", ssmtest.DefaultRegion, now); err != nil {
				t.Fatal(err)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			var m map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&m)
			if resp.StatusCode != 400 || m["__type"] != tc.wantType || m["message"] == "" {
				t.Errorf("got %d %v, want 400 %s with a message", resp.StatusCode, m, tc.wantType)
			}
			if got := resp.Header.Get("Content-Type"); got != "application/x-amz-json-1.1" {
				t.Errorf("Content-Type = %q", got)
			}
			if resp.Header.Get("x-amzn-RequestId") == "" {
				t.Error("no x-amzn-RequestId")
			}
		})
	}
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

func TestParameterLifecycleWithSDK(t *testing.T) {
	t.Parallel()
	sim, srv := start(t, ssmtest.Options{})
	c := client(srv)
	ctx := t.Context()
	name := aws.String("/spotlight/dev/providers/zoom")
	if _, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: name}); apiCode(err) != "ParameterNotFound" {
		t.Fatalf("GetParameter(missing) = %v", err)
	}
	var versions []int64
	for i, v := range []string{"one", "two", "three"} {
		out, err := c.PutParameter(ctx, &awsssm.PutParameterInput{Name: name, Value: aws.String(v),
			Type: types.ParameterTypeSecureString, KeyId: aws.String("alias/k"), Overwrite: aws.Bool(i > 0)})
		if err != nil {
			t.Fatal(err)
		}
		versions = append(versions, out.Version)
	}
	if versions[0] != 1 || versions[1] != 2 || versions[2] != 3 {
		t.Fatalf("versions = %v, want 1 2 3", versions)
	}
	_, err := c.PutParameter(ctx, &awsssm.PutParameterInput{Name: name, Value: aws.String("x"), Type: types.ParameterTypeSecureString})
	if apiCode(err) != "ParameterAlreadyExists" {
		t.Fatalf("Put without Overwrite = %v, want ParameterAlreadyExists", err)
	}
	enc, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: name})
	if err != nil || aws.ToString(enc.Parameter.Value) == "three" {
		t.Fatalf("GetParameter without decryption returned %q, %v; want ciphertext", aws.ToString(enc.Parameter.Value), err)
	}
	dec, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: name, WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(dec.Parameter.Value) != "three" || dec.Parameter.Version != 3 || dec.Parameter.Type != types.ParameterTypeSecureString {
		t.Fatalf("GetParameter = %+v, %v", dec.Parameter, err)
	}
	if aws.ToTime(dec.Parameter.LastModifiedDate).IsZero() || !strings.HasPrefix(aws.ToString(dec.Parameter.ARN), "arn:aws:ssm:us-east-1:") {
		t.Errorf("metadata = %v %v", dec.Parameter.LastModifiedDate, aws.ToString(dec.Parameter.ARN))
	}
	old, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String(*name + ":1"), WithDecryption: aws.Bool(true)})
	if err != nil || aws.ToString(old.Parameter.Value) != "one" {
		t.Fatalf("GetParameter(:1) = %v, %v", old, err)
	}
	hist, err := c.GetParameterHistory(ctx, &awsssm.GetParameterHistoryInput{Name: name, WithDecryption: aws.Bool(true)})
	if err != nil || len(hist.Parameters) != 3 || aws.ToString(hist.Parameters[1].Value) != "two" || aws.ToString(hist.Parameters[1].KeyId) != "alias/k" {
		t.Fatalf("history = %+v, %v", hist, err)
	}
	many, err := c.GetParameters(ctx, &awsssm.GetParametersInput{Names: []string{*name, "/nope"}, WithDecryption: aws.Bool(true)})
	if err != nil || len(many.Parameters) != 1 || len(many.InvalidParameters) != 1 || many.InvalidParameters[0] != "/nope" {
		t.Fatalf("GetParameters = %+v, %v", many, err)
	}
	if _, err := c.DeleteParameter(ctx, &awsssm.DeleteParameterInput{Name: name}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteParameter(ctx, &awsssm.DeleteParameterInput{Name: name}); apiCode(err) != "ParameterNotFound" {
		t.Fatalf("second delete = %v", err)
	}
	if _, ok := sim.Inspect(*name); ok {
		t.Fatal("deleted parameter still stored")
	}
}

func TestVersionLimitDropsOldest(t *testing.T) {
	t.Parallel()
	_, srv := start(t, ssmtest.Options{})
	c := client(srv)
	ctx := t.Context()
	name := aws.String("/x/many")
	for i := range ssmtest.MaxVersions + 5 {
		if _, err := c.PutParameter(ctx, &awsssm.PutParameterInput{Name: name, Value: aws.String("v"), Type: types.ParameterTypeString, Overwrite: aws.Bool(i > 0)}); err != nil {
			t.Fatal(err)
		}
	}
	var all []types.ParameterHistory
	var tok *string
	for {
		h, err := c.GetParameterHistory(ctx, &awsssm.GetParameterHistoryInput{Name: name, NextToken: tok})
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, h.Parameters...)
		if h.NextToken == nil {
			break
		}
		tok = h.NextToken
	}
	if len(all) != ssmtest.MaxVersions || all[0].Version != 6 || all[len(all)-1].Version != ssmtest.MaxVersions+5 {
		t.Fatalf("history has %d versions %d..%d", len(all), all[0].Version, all[len(all)-1].Version)
	}
}

func TestLabelsAndVersionLimit(t *testing.T) {
	t.Parallel()
	_, srv := start(t, ssmtest.Options{})
	c := client(srv)
	ctx := t.Context()
	name := aws.String("/x/labelled")
	put := func(i int) error {
		_, err := c.PutParameter(ctx, &awsssm.PutParameterInput{Name: name, Value: aws.String(fmt.Sprint("v", i)), Type: types.ParameterTypeString, Overwrite: aws.Bool(i > 1)})
		return err
	}
	if err := put(1); err != nil {
		t.Fatal(err)
	}
	out, err := c.LabelParameterVersion(ctx, &awsssm.LabelParameterVersionInput{Name: name, ParameterVersion: aws.Int64(1), Labels: []string{"pinned", "1bad", "awsx"}})
	if err != nil || out.ParameterVersion != 1 || len(out.InvalidLabels) != 2 {
		t.Fatalf("LabelParameterVersion = %+v, %v", out, err)
	}
	got, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String(*name + ":pinned")})
	if err != nil || aws.ToString(got.Parameter.Value) != "v1" {
		t.Fatalf("GetParameter(:pinned) = %v, %v", got, err)
	}
	for i := 2; i <= ssmtest.MaxVersions; i++ {
		if err := put(i); err != nil {
			t.Fatal(err)
		}
	}
	if err := put(ssmtest.MaxVersions + 1); apiCode(err) != "ParameterMaxVersionLimitExceeded" {
		t.Fatalf("101st version with labelled oldest = %v, want ParameterMaxVersionLimitExceeded", err)
	}
	// Moving the label away frees the oldest version.
	if _, err := c.LabelParameterVersion(ctx, &awsssm.LabelParameterVersionInput{Name: name, Labels: []string{"pinned"}}); err != nil {
		t.Fatal(err)
	}
	if err := put(ssmtest.MaxVersions + 1); err != nil {
		t.Fatalf("after moving the label: %v", err)
	}
	if _, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String(*name + ":1")}); apiCode(err) != "ParameterVersionNotFound" {
		t.Fatalf("version 1 should be gone: %v", err)
	}
}

func TestGetParametersByPath(t *testing.T) {
	t.Parallel()
	_, srv := start(t, ssmtest.Options{})
	c := client(srv)
	ctx := t.Context()
	names := []string{"/p/a", "/p/b/c", "/p/b/d/e", "/px/a", "/q/a"}
	for i := range 12 {
		names = append(names, "/p/many/"+string(rune('a'+i)))
	}
	for _, n := range names {
		if _, err := c.PutParameter(ctx, &awsssm.PutParameterInput{Name: aws.String(n), Value: aws.String("v" + n), Type: types.ParameterTypeString}); err != nil {
			t.Fatal(err)
		}
	}
	collect := func(recursive bool) ([]string, int) {
		p := awsssm.NewGetParametersByPathPaginator(c, &awsssm.GetParametersByPathInput{Path: aws.String("/p"), Recursive: aws.Bool(recursive)})
		var got []string
		pages := 0
		for p.HasMorePages() {
			out, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			if len(out.Parameters) > 10 {
				t.Errorf("page of %d > 10", len(out.Parameters))
			}
			for _, prm := range out.Parameters {
				got = append(got, aws.ToString(prm.Name))
			}
		}
		return got, pages
	}
	got, _ := collect(false)
	if strings.Join(got, ",") != "/p/a" {
		t.Errorf("non-recursive = %v, want [/p/a]", got)
	}
	got, pages := collect(true)
	if len(got) != 15 || pages != 2 {
		t.Errorf("recursive = %d names in %d pages, want 15 in 2: %v", len(got), pages, got)
	}
	for _, n := range got {
		if !strings.HasPrefix(n, "/p/") {
			t.Errorf("recursive listing includes %s", n)
		}
	}
}

func TestTiers(t *testing.T) {
	t.Parallel()
	sim, srv := start(t, ssmtest.Options{})
	c := client(srv)
	ctx := t.Context()
	big := strings.Repeat("x", 5000)
	put := func(name, value string, tier types.ParameterTier, overwrite bool) error {
		_, err := c.PutParameter(ctx, &awsssm.PutParameterInput{Name: aws.String(name), Value: aws.String(value),
			Type: types.ParameterTypeSecureString, Tier: tier, Overwrite: aws.Bool(overwrite)})
		return err
	}
	if err := put("/t/std", big, types.ParameterTierStandard, false); apiCode(err) != "ValidationException" {
		t.Errorf("5000 bytes on Standard = %v, want ValidationException", err)
	}
	if err := put("/t/adv", big, types.ParameterTierAdvanced, false); err != nil {
		t.Errorf("5000 bytes on Advanced = %v", err)
	}
	if err := put("/t/adv", strings.Repeat("y", 9000), types.ParameterTierAdvanced, true); apiCode(err) != "ValidationException" {
		t.Errorf("9000 bytes on Advanced = %v", err)
	}
	if err := put("/t/adv", "small", types.ParameterTierStandard, true); apiCode(err) != "ValidationException" {
		t.Errorf("downgrade = %v", err)
	}
	if err := put("/t/it", big, types.ParameterTierIntelligentTiering, false); err != nil {
		t.Errorf("intelligent tiering = %v", err)
	}
	if st, _ := sim.Inspect("/t/it"); st.Tier != "Advanced" {
		t.Errorf("intelligent tiering chose %s", st.Tier)
	}
}

func TestThrottling(t *testing.T) {
	t.Parallel()
	now := time.Now()
	sim, srv := start(t, ssmtest.Options{Now: func() time.Time { return now }})
	c := client(srv)
	ctx := t.Context()
	sim.ThrottleNext(2)
	for i := range 3 {
		_, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String("/a/b")})
		want := "ThrottlingException"
		if i == 2 {
			want = "ParameterNotFound"
		}
		if apiCode(err) != want {
			t.Errorf("call %d: %v, want %s", i, err, want)
		}
	}
	// A rate of 1/s with burst 2 at a frozen clock admits two calls.
	sim.SetRateLimit(1, 2)
	var codes []string
	for range 3 {
		_, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String("/a/b")})
		codes = append(codes, apiCode(err))
	}
	if strings.Join(codes, ",") != "ParameterNotFound,ParameterNotFound,ThrottlingException" {
		t.Errorf("rate-limited codes = %v", codes)
	}
	sim.SetRateLimit(0, 0)
	if _, err := c.GetParameter(ctx, &awsssm.GetParameterInput{Name: aws.String("/a/b")}); apiCode(err) != "ParameterNotFound" {
		t.Errorf("after removing the limit: %v", err)
	}
	if sim.Calls("GetParameter") != 7 {
		t.Errorf("Calls = %d, want 7", sim.Calls("GetParameter"))
	}
}

// TestPutParameterRefusals: what the PutParameter reference says SSM refuses
// and a lenient simulator would store. A value with text wrapped in double
// braces nests another parameter; a name's 1011 characters include the ARN
// before it (arn:aws:ssm:us-east-1:123456789012:parameter/, 45 here).
func TestPutParameterRefusals(t *testing.T) {
	t.Parallel()
	sim, srv := start(t, ssmtest.Options{})
	c := client(srv)
	const arnPrefix = len("arn:aws:ssm:us-east-1:123456789012:parameter/")
	longest := "/" + strings.Repeat("n", 1011-arnPrefix)
	tests := []struct {
		name, param, value string
		wantCode           string
	}{
		{"braces", "/t/braces", "pass{{word}}", "ValidationException"},
		{"ssm reference", "/t/ref", "{{ssm:/other/param}}", "ValidationException"},
		{"braces across lines", "/t/lines", "a{{\n}}b", "ValidationException"},
		{"single braces", "/t/single", `{"a":{"b":"}"}}`, ""},
		{"opening only", "/t/open", "x{{y", ""},
		{"closing before opening", "/t/order", "}}x{{", ""},
		{"longest name", longest, "v", ""},
		{"name one over with its ARN", longest + "n", "v", "ValidationException"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, typ := range []types.ParameterType{types.ParameterTypeString, types.ParameterTypeSecureString} {
				_, err := c.PutParameter(t.Context(), &awsssm.PutParameterInput{Name: aws.String(tc.param), Value: aws.String(tc.value),
					Type: typ, Overwrite: aws.Bool(true)})
				if got := apiCode(err); got != tc.wantCode || (err != nil) != (tc.wantCode != "") {
					t.Fatalf("%s: PutParameter = %v, want code %q", typ, err, tc.wantCode)
				}
				if _, stored := sim.Inspect(tc.param); stored != (tc.wantCode == "") {
					t.Fatalf("%s: stored = %v after %v", typ, stored, err)
				}
			}
		})
	}
	if _, err := c.GetParameter(t.Context(), &awsssm.GetParameterInput{Name: aws.String(longest + "n")}); apiCode(err) != "ValidationException" {
		t.Errorf("GetParameter of a name too long with its ARN = %v, want ValidationException", err)
	}
}
