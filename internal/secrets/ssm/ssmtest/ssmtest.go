// Package ssmtest is a loopback simulator of AWS Systems Manager Parameter
// Store speaking the AWS JSON 1.1 protocol, for tests and the gateway's
// embedded sandbox. It is an http.Handler; wrap it in httptest.NewServer or a
// listener and point the real aws-sdk-go-v2 SSM client at it.
//
// It follows the SSM API reference and the Signature Version 4 documentation:
//
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameter.html
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameters.html
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_PutParameter.html
//     (a name's 1011 characters count the ARN before it; a value with text
//     wrapped in double braces, "{{name}}", is refused: parameters can't be
//     nested in the values of others)
//   - https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-su-create.html
//     (name characters, "aws"/"ssm" prefixes, 15 hierarchy levels)
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_DeleteParameter.html
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParametersByPath.html
//     (MaxResults 1 to 10, NextToken, Recursive, WithDecryption)
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_GetParameterHistory.html
//     (MaxResults 1 to 50)
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/API_LabelParameterVersion.html
//   - https://docs.aws.amazon.com/systems-manager/latest/APIReference/CommonErrors.html
//   - https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html (SigV4)
//   - https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html
//     (Standard 4 KB, Advanced 8 KB; 100 versions kept per parameter)
//
// What it does like SSM: every request is POST / with Content-Type
// application/x-amz-json-1.1 and X-Amz-Target AmazonSSM.<Operation>; the
// Authorization header must be a valid AWS4-HMAC-SHA256 signature made with
// the configured access key, secret key and region for service "ssm"
// (signature, scope and X-Amz-Date within 15 minutes are all checked).
// Errors are JSON bodies {"__type": ..., "message": ...} with status 400
// (ParameterNotFound, ParameterAlreadyExists, ParameterVersionNotFound,
// ParameterMaxVersionLimitExceeded, ThrottlingException, ValidationException, InvalidNextToken,
// MissingAuthenticationTokenException, UnrecognizedClientException,
// InvalidSignatureException, IncompleteSignatureException,
// UnknownOperationException, SerializationException; InternalServerError
// with 500). Versions start at 1
// and increase by one per PutParameter, never reused until the parameter is
// deleted; the oldest of more than 100 versions is dropped. SecureString
// values are stored encrypted under a per-KMS-key-id key (the key id is
// recorded and returned in history) and returned as ciphertext unless
// WithDecryption is true. Throttling (ThrottleNext, SetRateLimit) and
// server errors (FailNext) can be injected.
//
// Labels (LabelParameterVersion, "name:label" selectors) are kept, and as in
// SSM a labelled oldest version is not dropped: the 101st version is refused
// with ParameterMaxVersionLimitExceeded.
//
// Not simulated: policies, tags, ParameterFilters (rejected), StringList semantics beyond
// storing the string, and IAM.
package ssmtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Default credentials and region, used when Options leaves them empty.
const (
	DefaultAccessKeyID     = "AKIASSMTESTEXAMPLE01"
	DefaultSecretAccessKey = "ssmtest/secret/key/for/sigv4/EXAMPLEKEY"
	DefaultRegion          = "us-east-1"
	DefaultAccountID       = "123456789012"
	// DefaultKMSKeyID is the key SSM uses for SecureString when KeyId is omitted.
	DefaultKMSKeyID = "alias/aws/ssm"
)

// Limits the simulator enforces, as documented for Parameter Store.
const (
	StandardMaxValue = 4096
	AdvancedMaxValue = 8192
	MaxVersions      = 100
	maxNameLen       = 1011
	maxLevels        = 15
	maxBody          = 1 << 20
)

// Options configures a Server. The zero value is usable.
type Options struct {
	AccessKeyID     string           // default DefaultAccessKeyID
	SecretAccessKey string           // default DefaultSecretAccessKey
	Region          string           // default DefaultRegion
	AccountID       string           // used in ARNs, default DefaultAccountID
	Now             func() time.Time // default time.Now
}

// Server is the simulator. Create it with New; it is safe for concurrent use.
type Server struct {
	opts Options

	mu       sync.Mutex
	params   map[string]*param
	throttle int
	fail     int
	failOp   string
	limiter  *rate.Limiter
	calls    map[string]int
	seq      int64
}

type param struct {
	name    string
	typ     string
	keyID   string
	tier    string
	last    int64
	history []version // ascending by number, at most MaxVersions
}

type version struct {
	number  int64
	stored  []byte // plaintext for String/StringList, nonce||ciphertext for SecureString
	typ     string
	keyID   string
	tier    string
	desc    string
	labels  []string
	modTime time.Time
}

// New returns a simulator with no parameters.
func New(opts Options) *Server {
	if opts.AccessKeyID == "" {
		opts.AccessKeyID = DefaultAccessKeyID
	}
	if opts.SecretAccessKey == "" {
		opts.SecretAccessKey = DefaultSecretAccessKey
	}
	if opts.Region == "" {
		opts.Region = DefaultRegion
	}
	if opts.AccountID == "" {
		opts.AccountID = DefaultAccountID
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Server{opts: opts, params: map[string]*param{}, calls: map[string]int{}}
}

// ThrottleNext makes the next n authenticated requests fail with ThrottlingException.
func (s *Server) ThrottleNext(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.throttle = n
}

// FailNext makes the next n authenticated requests for operation op ("" for
// any) fail with a 500 InternalServerError, without applying them.
func (s *Server) FailNext(op string, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail, s.failOp = n, op
}

// SetRateLimit throttles requests above r per second (with burst); r <= 0 removes the limit.
func (s *Server) SetRateLimit(r float64, burst int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r <= 0 {
		s.limiter = nil
		return
	}
	s.limiter = rate.NewLimiter(rate.Limit(r), max(burst, 1))
}

// Calls returns how many authenticated requests named op (e.g. "PutParameter")
// reached the simulator, throttled ones included.
func (s *Server) Calls(op string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[op]
}

// Stored describes how the simulator holds a parameter's latest version.
type Stored struct {
	Type, KeyID, Tier string
	Version           int64
	// Raw is the stored bytes: the ciphertext for a SecureString.
	Raw []byte
}

// Inspect returns how the latest version of name is stored, for tests that
// check encryption at rest, key ids and tiers.
func (s *Server) Inspect(name string) (Stored, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.params[name]
	if !ok {
		return Stored{}, false
	}
	v := p.history[len(p.history)-1]
	return Stored{Type: v.typ, KeyID: v.keyID, Tier: v.tier, Version: v.number, Raw: bytes.Clone(v.stored)}, true
}

// apiError is an AWS JSON 1.1 error response.
type apiError struct {
	status int
	typ    string
	msg    string
}

func errf(typ, format string, a ...any) *apiError {
	return &apiError{status: http.StatusBadRequest, typ: typ, msg: fmt.Sprintf(format, a...)}
}

const jsonType = "application/x-amz-json-1.1"

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	reqID := s.requestID()
	w.Header().Set("x-amzn-RequestId", reqID)
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		writeErr(w, errf("SerializationException", "could not read request body"))
		return
	}
	if len(body) > maxBody {
		writeErr(w, &apiError{status: http.StatusRequestEntityTooLarge, typ: "SerializationException", msg: "request body too large"})
		return
	}
	if r.Method != http.MethodPost || r.URL.Path != "/" {
		writeErr(w, &apiError{status: http.StatusNotFound, typ: "UnknownOperationException", msg: "requests are POST /"})
		return
	}
	if e := s.authenticate(r, body); e != nil {
		writeErr(w, e)
		return
	}
	op, ok := strings.CutPrefix(r.Header.Get("X-Amz-Target"), "AmazonSSM.")
	if !ok || op == "" {
		writeErr(w, errf("UnknownOperationException", "missing or unknown X-Amz-Target"))
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != jsonType {
		writeErr(w, errf("SerializationException", "Content-Type must be %s, got %q", jsonType, ct))
		return
	}
	if e := s.admit(op); e != nil {
		writeErr(w, e)
		return
	}
	var out any
	var e *apiError
	switch op {
	case "GetParameter":
		out, e = s.getParameter(body)
	case "GetParameters":
		out, e = s.getParameters(body)
	case "PutParameter":
		out, e = s.putParameter(body)
	case "DeleteParameter":
		out, e = s.deleteParameter(body)
	case "GetParametersByPath":
		out, e = s.getParametersByPath(body)
	case "GetParameterHistory":
		out, e = s.getParameterHistory(body)
	case "LabelParameterVersion":
		out, e = s.labelParameterVersion(body)
	default:
		e = errf("UnknownOperationException", "operation %s is not supported", op)
	}
	if e != nil {
		writeErr(w, e)
		return
	}
	b, err := json.Marshal(out)
	if err != nil {
		writeErr(w, &apiError{status: http.StatusInternalServerError, typ: "InternalServerError", msg: "encode response"})
		return
	}
	w.Header().Set("Content-Type", jsonType)
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
}

func writeErr(w http.ResponseWriter, e *apiError) {
	b, _ := json.Marshal(map[string]string{"__type": e.typ, "message": e.msg})
	w.Header().Set("Content-Type", jsonType)
	w.WriteHeader(e.status)
	_, _ = w.Write(b)
}

func (s *Server) requestID() string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
}

func (s *Server) admit(op string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls[op]++
	if s.throttle > 0 {
		s.throttle--
		return errf("ThrottlingException", "Rate exceeded")
	}
	if s.limiter != nil && !s.limiter.AllowN(s.opts.Now(), 1) {
		return errf("ThrottlingException", "Rate exceeded")
	}
	if s.fail > 0 && (s.failOp == "" || s.failOp == op) {
		s.fail--
		return &apiError{status: http.StatusInternalServerError, typ: "InternalServerError", msg: "An internal error occurred."}
	}
	return nil
}

var authRE = regexp.MustCompile(`^AWS4-HMAC-SHA256 Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request,\s*SignedHeaders=([a-z0-9;\-]+),\s*Signature=([0-9a-f]{64})$`)

// authenticate checks the SigV4 Authorization header against the configured
// credentials, region and clock.
func (s *Server) authenticate(r *http.Request, body []byte) *apiError {
	h := r.Header.Get("Authorization")
	if h == "" {
		return errf("MissingAuthenticationTokenException", "Missing Authentication Token")
	}
	m := authRE.FindStringSubmatch(h)
	if m == nil {
		return errf("IncompleteSignatureException", "Authorization header requires 'Credential', 'Signature' and 'SignedHeaders' parameters in AWS4-HMAC-SHA256 form")
	}
	akid, date, region, service, signed, sig := m[1], m[2], m[3], m[4], m[5], m[6]
	if akid != s.opts.AccessKeyID {
		return errf("UnrecognizedClientException", "The security token included in the request is invalid.")
	}
	if region != s.opts.Region || service != "ssm" {
		return errf("InvalidSignatureException", "Credential should be scoped to a valid region and service 'ssm', not '%s/%s'.", region, service)
	}
	amzDate := r.Header.Get("X-Amz-Date")
	t, err := time.Parse("20060102T150405Z", amzDate)
	if err != nil || !strings.HasPrefix(amzDate, date) {
		return errf("IncompleteSignatureException", "X-Amz-Date must be a valid ISO 8601 basic timestamp matching the credential date")
	}
	if d := s.opts.Now().Sub(t); d > 15*time.Minute || d < -15*time.Minute {
		return errf("InvalidSignatureException", "Signature expired: %s is now earlier or later than 15 minutes from the server time.", amzDate)
	}
	names := strings.Split(signed, ";")
	if !sort.StringsAreSorted(names) || !contains(names, "host") || !contains(names, "x-amz-date") {
		return errf("IncompleteSignatureException", "SignedHeaders must be sorted and include host and x-amz-date")
	}
	var canon strings.Builder
	canon.WriteString(r.Method + "\n/\n" + r.URL.RawQuery + "\n")
	for _, n := range names {
		var v string
		switch n {
		case "host":
			v = r.Host
		case "content-length":
			v = strconv.FormatInt(r.ContentLength, 10)
		default:
			vals := r.Header.Values(n)
			for i := range vals {
				vals[i] = strings.Join(strings.Fields(vals[i]), " ")
			}
			v = strings.Join(vals, ",")
		}
		canon.WriteString(n + ":" + v + "\n")
	}
	payload := sha256.Sum256(body)
	canon.WriteString("\n" + signed + "\n" + hex.EncodeToString(payload[:]))
	creq := sha256.Sum256([]byte(canon.String()))
	scope := date + "/" + region + "/" + service + "/aws4_request"
	sts := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(creq[:])
	k := hmacSHA256([]byte("AWS4"+s.opts.SecretAccessKey), date)
	k = hmacSHA256(k, region)
	k = hmacSHA256(k, service)
	k = hmacSHA256(k, "aws4_request")
	want := hex.EncodeToString(hmacSHA256(k, sts))
	if !hmac.Equal([]byte(want), []byte(sig)) {
		return errf("InvalidSignatureException", "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.")
	}
	return nil
}

func hmacSHA256(key []byte, msg string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msg))
	return m.Sum(nil)
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

func decode(body []byte, v any) *apiError {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return errf("SerializationException", "cannot parse request: %v", err)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[a-zA-Z0-9_.\-/]+$`)

// validName checks a parameter name. Its length limit counts the ARN before
// the name too (arn:aws:ssm:<region>:<account>:parameter/), as the
// PutParameter reference says of the 1011 characters.
func (s *Server) validName(name string) *apiError {
	if name == "" || !nameRE.MatchString(name) {
		return errf("ValidationException", "Parameter name: must be 1 to %d characters from a-zA-Z0-9_.-/", maxNameLen)
	}
	if n := len(s.arn(name)); n > maxNameLen {
		return errf("ValidationException", "Parameter name: the name and the ARN before it (%d characters) exceed the maximum of %d characters.", n, maxNameLen)
	}
	if strings.Contains(name, "/") {
		if !strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/") || strings.Contains(name, "//") {
			return errf("ValidationException", "Parameter name: a fully qualified name must begin with a forward slash, and its levels must not be empty")
		}
		if strings.Count(name, "/") > maxLevels {
			return errf("HierarchyLevelLimitExceededException", "A hierarchy can have a maximum of %d levels.", maxLevels)
		}
	}
	first := strings.ToLower(strings.TrimPrefix(name, "/"))
	if strings.HasPrefix(first, "aws") || strings.HasPrefix(first, "ssm") {
		return errf("ValidationException", "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive).")
	}
	return nil
}

// wireParam is the Parameter shape of GetParameter and friends.
type wireParam struct {
	Name             string
	Type             string
	Value            string
	Version          int64
	LastModifiedDate float64
	ARN              string
	DataType         string
	Selector         string `json:",omitempty"`
}

type wireHistory struct {
	Name             string
	Type             string
	KeyId            string `json:",omitempty"` //nolint:revive // AWS wire name
	LastModifiedDate float64
	LastModifiedUser string
	Description      string `json:",omitempty"`
	Value            string
	Version          int64
	Labels           []string
	Tier             string
	DataType         string
}

func epoch(t time.Time) float64 { return float64(t.UnixMicro()) / 1e6 }

func (s *Server) arn(name string) string {
	return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", s.opts.Region, s.opts.AccountID, strings.TrimPrefix(name, "/"))
}

// value renders a stored version for the wire, decrypting if asked.
func (s *Server) value(v version, decrypt bool) (string, *apiError) {
	if v.typ != "SecureString" {
		return string(v.stored), nil
	}
	if !decrypt {
		return base64.StdEncoding.EncodeToString(v.stored), nil
	}
	plain, err := kmsOpen(v.keyID, v.stored)
	if err != nil {
		return "", &apiError{status: http.StatusBadRequest, typ: "InvalidKeyId", msg: "The KMS key cannot decrypt the parameter."}
	}
	return string(plain), nil
}

func (s *Server) wire(p *param, v version, decrypt bool, selector string) (wireParam, *apiError) {
	val, e := s.value(v, decrypt)
	if e != nil {
		return wireParam{}, e
	}
	return wireParam{Name: p.name, Type: v.typ, Value: val, Version: v.number, LastModifiedDate: epoch(v.modTime),
		ARN: s.arn(p.name), DataType: "text", Selector: selector}, nil
}

// lookup resolves "name" or "name:version".
func (s *Server) lookup(ref string) (*param, version, string, *apiError) {
	name, sel := ref, ""
	if i := strings.LastIndexByte(ref, ':'); i > 0 {
		name, sel = ref[:i], ref[i:]
	}
	if e := s.validName(name); e != nil {
		return nil, version{}, "", e
	}
	p, ok := s.params[name]
	if !ok {
		return nil, version{}, "", errf("ParameterNotFound", "Parameter %s not found.", name)
	}
	if sel == "" {
		return p, p.history[len(p.history)-1], "", nil
	}
	n, err := strconv.ParseInt(sel[1:], 10, 64)
	for _, v := range p.history {
		if err == nil && v.number == n || err != nil && slices.Contains(v.labels, sel[1:]) {
			return p, v, sel, nil
		}
	}
	if err != nil {
		return nil, version{}, "", errf("ParameterVersionNotFound", "Systems Manager could not find label %s of %s.", sel[1:], name)
	}
	return nil, version{}, "", errf("ParameterVersionNotFound", "Systems Manager could not find version %d of %s. Verify the version and try again.", n, name)
}

func (s *Server) getParameter(body []byte) (any, *apiError) {
	var in struct {
		Name           string
		WithDecryption bool
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, v, sel, e := s.lookup(in.Name)
	if e != nil {
		return nil, e
	}
	wp, e := s.wire(p, v, in.WithDecryption, sel)
	if e != nil {
		return nil, e
	}
	return map[string]any{"Parameter": wp}, nil
}

func (s *Server) getParameters(body []byte) (any, *apiError) {
	var in struct {
		Names          []string
		WithDecryption bool
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if len(in.Names) < 1 || len(in.Names) > 10 {
		return nil, errf("ValidationException", "1 validation error detected: Value at 'names' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	out := []wireParam{}
	invalid := []string{}
	for _, n := range in.Names {
		p, v, sel, e := s.lookup(n)
		if e != nil {
			if e.typ == "ParameterNotFound" || e.typ == "ParameterVersionNotFound" {
				invalid = append(invalid, n)
				continue
			}
			return nil, e
		}
		wp, e := s.wire(p, v, in.WithDecryption, sel)
		if e != nil {
			return nil, e
		}
		out = append(out, wp)
	}
	return map[string]any{"Parameters": out, "InvalidParameters": invalid}, nil
}

func (s *Server) putParameter(body []byte) (any, *apiError) {
	var in struct {
		Name           string
		Value          *string
		Type           string
		KeyId          string //nolint:revive // AWS wire name
		Overwrite      *bool
		Tier           string
		Description    string
		DataType       string
		AllowedPattern string
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if e := s.validName(in.Name); e != nil {
		return nil, e
	}
	if in.Value == nil || *in.Value == "" {
		return nil, errf("ValidationException", "1 validation error detected: Value at 'value' failed to satisfy constraint: Member must have length greater than or equal to 1")
	}
	if nestsParameter(*in.Value) {
		return nil, errf("ValidationException", "Parameter value can't nest another parameter. Do not use \"{{}}\" in the value.")
	}
	switch in.Type {
	case "", "String", "StringList", "SecureString":
	default:
		return nil, errf("ValidationException", "1 validation error detected: Value '%s' at 'type' failed to satisfy constraint: Member must satisfy enum value set: [SecureString, StringList, String]", in.Type)
	}
	if in.KeyId != "" && in.Type != "SecureString" {
		return nil, errf("ValidationException", "KeyId is only valid for SecureString parameters.")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, exists := s.params[in.Name]
	if exists && (in.Overwrite == nil || !*in.Overwrite) {
		return nil, errf("ParameterAlreadyExists", "The parameter already exists. To overwrite this value, set the overwrite option in the request to true.")
	}
	typ := in.Type
	if typ == "" {
		if !exists {
			return nil, errf("ValidationException", "A parameter type is required when you create a parameter.")
		}
		typ = p.typ
	}
	tier := in.Tier
	size := len(*in.Value)
	switch tier {
	case "":
		tier = "Standard"
		if exists {
			tier = p.tier
		}
	case "Standard", "Advanced":
	case "Intelligent-Tiering":
		tier = "Standard"
		if size > StandardMaxValue || exists && p.tier == "Advanced" {
			tier = "Advanced"
		}
	default:
		return nil, errf("ValidationException", "1 validation error detected: Value '%s' at 'tier' failed to satisfy constraint: Member must satisfy enum value set: [Advanced, Intelligent-Tiering, Standard]", in.Tier)
	}
	if exists && p.tier == "Advanced" && tier == "Standard" {
		return nil, errf("ValidationException", "This parameter uses the advanced-parameter tier. You can't downgrade a parameter from the advanced-parameter tier to the standard-parameter tier. If necessary, you can delete the advanced parameter and recreate it as a standard parameter.")
	}
	if tier == "Standard" && size > StandardMaxValue {
		return nil, errf("ValidationException", "Standard tier parameters support a maximum parameter value of %d characters. To create a larger parameter value, upgrade the parameter to use the advanced-parameter tier. For more information, see https://docs.aws.amazon.com/systems-manager/latest/userguide/parameter-store-advanced-parameters.html", StandardMaxValue)
	}
	if size > AdvancedMaxValue {
		return nil, errf("ValidationException", "Advanced tier parameters support a maximum parameter value of %d characters.", AdvancedMaxValue)
	}
	keyID := ""
	stored := []byte(*in.Value)
	if typ == "SecureString" {
		keyID = in.KeyId
		if keyID == "" {
			keyID = DefaultKMSKeyID
		}
		stored = kmsSeal(keyID, stored)
	}
	if exists && len(p.history) >= MaxVersions && len(p.history[0].labels) > 0 {
		return nil, errf("ParameterMaxVersionLimitExceeded", "You attempted to create a new version of %s by calling the PutParameter API with the overwrite flag. Version %d, the oldest version, can't be deleted because it has a label associated with it. Move the label to another version of the parameter, and try again.", in.Name, p.history[0].number)
	}
	if !exists {
		p = &param{name: in.Name}
		s.params[in.Name] = p
	}
	p.last++
	p.typ, p.keyID, p.tier = typ, keyID, tier
	p.history = append(p.history, version{number: p.last, stored: stored, typ: typ, keyID: keyID, tier: tier,
		desc: in.Description, modTime: s.opts.Now()})
	if len(p.history) > MaxVersions {
		p.history = append([]version(nil), p.history[len(p.history)-MaxVersions:]...)
	}
	return map[string]any{"Version": p.last, "Tier": tier}, nil
}

// nestsParameter reports a value with text wrapped in double braces
// ("{{name}}", "{{ssm:name}}"), which PutParameter refuses whatever the
// parameter's type.
func nestsParameter(v string) bool {
	i := strings.Index(v, "{{")
	return i >= 0 && strings.Contains(v[i+2:], "}}")
}

func (s *Server) deleteParameter(body []byte) (any, *apiError) {
	var in struct{ Name string }
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if e := s.validName(in.Name); e != nil {
		return nil, e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.params[in.Name]; !ok {
		return nil, errf("ParameterNotFound", "Parameter %s not found.", in.Name)
	}
	delete(s.params, in.Name)
	return map[string]any{}, nil
}

func pageToken(last string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("after:" + last))
}

func parseToken(tok string) (string, *apiError) {
	b, err := base64.RawURLEncoding.DecodeString(tok)
	after, ok := strings.CutPrefix(string(b), "after:")
	if err != nil || !ok {
		return "", errf("InvalidNextToken", "The specified token isn't valid.")
	}
	return after, nil
}

func (s *Server) getParametersByPath(body []byte) (any, *apiError) {
	var in struct {
		Path             string
		Recursive        bool
		WithDecryption   bool
		MaxResults       *int
		NextToken        string
		ParameterFilters []json.RawMessage
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if len(in.ParameterFilters) > 0 {
		return nil, errf("ValidationException", "ParameterFilters are not supported by this simulator")
	}
	limit := 10
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 10 {
			return nil, errf("ValidationException", "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 10", *in.MaxResults)
		}
		limit = *in.MaxResults
	}
	if !strings.HasPrefix(in.Path, "/") || strings.Contains(in.Path, "//") || !nameRE.MatchString(in.Path) {
		return nil, errf("ValidationException", "The parameter path must begin with a forward slash (/).")
	}
	prefix := strings.TrimSuffix(in.Path, "/") + "/"
	after := ""
	if in.NextToken != "" {
		var e *apiError
		if after, e = parseToken(in.NextToken); e != nil {
			return nil, e
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var names []string
	for n := range s.params {
		rest, ok := strings.CutPrefix(n, prefix)
		if !ok || rest == "" || (!in.Recursive && strings.Contains(rest, "/")) || n <= after {
			continue
		}
		names = append(names, n)
	}
	sort.Strings(names)
	out := map[string]any{}
	if len(names) > limit {
		names = names[:limit]
		out["NextToken"] = pageToken(names[limit-1])
	}
	params := []wireParam{}
	for _, n := range names {
		p := s.params[n]
		wp, e := s.wire(p, p.history[len(p.history)-1], in.WithDecryption, "")
		if e != nil {
			return nil, e
		}
		params = append(params, wp)
	}
	out["Parameters"] = params
	return out, nil
}

func (s *Server) getParameterHistory(body []byte) (any, *apiError) {
	var in struct {
		Name           string
		WithDecryption bool
		MaxResults     *int
		NextToken      string
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if e := s.validName(in.Name); e != nil {
		return nil, e
	}
	limit := 50
	if in.MaxResults != nil {
		if *in.MaxResults < 1 || *in.MaxResults > 50 {
			return nil, errf("ValidationException", "1 validation error detected: Value '%d' at 'maxResults' failed to satisfy constraint: Member must have value less than or equal to 50", *in.MaxResults)
		}
		limit = *in.MaxResults
	}
	var after int64
	if in.NextToken != "" {
		a, e := parseToken(in.NextToken)
		if e != nil {
			return nil, e
		}
		n, err := strconv.ParseInt(a, 10, 64)
		if err != nil {
			return nil, errf("InvalidNextToken", "The specified token isn't valid.")
		}
		after = n
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.params[in.Name]
	if !ok {
		return nil, errf("ParameterNotFound", "Parameter %s not found.", in.Name)
	}
	out := map[string]any{}
	hist := []wireHistory{}
	for _, v := range p.history {
		if v.number <= after {
			continue
		}
		if len(hist) == limit {
			out["NextToken"] = pageToken(strconv.FormatInt(hist[len(hist)-1].Version, 10))
			break
		}
		val, e := s.value(v, in.WithDecryption)
		if e != nil {
			return nil, e
		}
		hist = append(hist, wireHistory{Name: p.name, Type: v.typ, KeyId: v.keyID, LastModifiedDate: epoch(v.modTime),
			LastModifiedUser: "arn:aws:iam::" + s.opts.AccountID + ":user/ssmtest", Description: v.desc, Value: val,
			Version: v.number, Labels: append([]string{}, v.labels...), Tier: v.tier, DataType: "text"})
	}
	out["Parameters"] = hist
	return out, nil
}

var labelRE = regexp.MustCompile(`^[a-zA-Z_.\-][a-zA-Z0-9_.\-]{0,99}$`)

func (s *Server) labelParameterVersion(body []byte) (any, *apiError) {
	var in struct {
		Name             string
		ParameterVersion *int64
		Labels           []string
	}
	if e := decode(body, &in); e != nil {
		return nil, e
	}
	if e := s.validName(in.Name); e != nil {
		return nil, e
	}
	if len(in.Labels) < 1 || len(in.Labels) > 10 {
		return nil, errf("ValidationException", "1 validation error detected: Value at 'labels' failed to satisfy constraint: Member must have length between 1 and 10")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.params[in.Name]
	if !ok {
		return nil, errf("ParameterNotFound", "Parameter %s not found.", in.Name)
	}
	idx := len(p.history) - 1
	if in.ParameterVersion != nil {
		idx = slices.IndexFunc(p.history, func(v version) bool { return v.number == *in.ParameterVersion })
		if idx < 0 {
			return nil, errf("ParameterVersionNotFound", "Systems Manager could not find version %d of %s. Verify the version and try again.", *in.ParameterVersion, in.Name)
		}
	}
	invalid := []string{}
	for _, l := range in.Labels {
		low := strings.ToLower(l)
		if !labelRE.MatchString(l) || strings.HasPrefix(low, "aws") || strings.HasPrefix(low, "ssm") {
			invalid = append(invalid, l)
			continue
		}
		for i := range p.history { // a label names one version: move it
			p.history[i].labels = slices.DeleteFunc(p.history[i].labels, func(x string) bool { return x == l })
		}
		if len(p.history[idx].labels) >= 10 {
			return nil, errf("ParameterVersionLabelLimitExceeded", "A parameter version can have maximum 10 labels.")
		}
		p.history[idx].labels = append(p.history[idx].labels, l)
	}
	return map[string]any{"InvalidLabels": invalid, "ParameterVersion": p.history[idx].number}, nil
}

// kmsSeal simulates KMS: AES-256-GCM under a key derived from the key id,
// so a SecureString is never held in clear and decrypts only under its key.
func kmsSeal(keyID string, plain []byte) []byte {
	g := kmsAEAD(keyID)
	nonce := make([]byte, g.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return g.Seal(nonce, nonce, plain, []byte(keyID))
}

func kmsOpen(keyID string, sealed []byte) ([]byte, error) {
	g := kmsAEAD(keyID)
	if len(sealed) < g.NonceSize() {
		return nil, fmt.Errorf("short ciphertext")
	}
	return g.Open(nil, sealed[:g.NonceSize()], sealed[g.NonceSize():], []byte(keyID))
}

func kmsAEAD(keyID string) cipher.AEAD {
	k := sha256.Sum256([]byte("ssmtest-kms/" + keyID))
	b, _ := aes.NewCipher(k[:])
	g, _ := cipher.NewGCM(b)
	return g
}
