package devs3

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/auditexport/auditexport/internal/clock"
)

// stsNamespace is the XML namespace of every STS response.
const stsNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"

// Bounds of AssumeRole's DurationSeconds, as AWS has them for a role whose
// maximum session duration is left at its default.
const (
	minSessionDuration     = 15 * time.Minute
	defaultSessionDuration = time.Hour
	maxSessionDuration     = 12 * time.Hour
)

// maxSTSBody bounds a Query API request body; real ones are a few hundred
// bytes.
const maxSTSBody = 64 << 10

var (
	roleARNRe     = regexp.MustCompile(`^arn:aws:iam::([0-9]{12}):role/(?:[\w+=,.@-]+/)*([\w+=,.@-]{1,64})$`)
	sessionNameRe = regexp.MustCompile(`^[\w+=,.@-]{2,64}$`)
	// credentialRe finds the access key id in a SigV4 Authorization header.
	credentialRe = regexp.MustCompile(`Credential=([^/,\s]+)/`)
)

// stsService answers the STS Query API calls that the agent makes: AssumeRole of the
// roles added with Server.AddRole. A role trusts any caller that passes its
// external id, which is the condition auditexport's trust policy sets; the
// caller's own signature is not checked. The credentials it hands out are
// remembered, so that S3 requests signed with them are accepted and requests
// with an unknown or expired session token are refused as S3 refuses them.
type stsService struct {
	clock clock.Clock

	mu       sync.Mutex
	roles    map[string]string  // role ARN -> the external id its trust policy requires
	sessions map[string]session // temporary access key id -> session
}

type session struct {
	secret, token string
	expires       time.Time
}

func newSTS(c clock.Clock) *stsService {
	return &stsService{clock: c, roles: make(map[string]string), sessions: make(map[string]session)}
}

// addRole makes roleARN assumable with externalID.
func (s *stsService) addRole(roleARN, externalID string) error {
	if !roleARNRe.MatchString(roleARN) {
		return fmt.Errorf("role ARN %q: want arn:aws:iam::ACCOUNT:role/NAME with a 12-digit account", roleARN)
	}
	if externalID == "" {
		return fmt.Errorf("role %s: an external id is required, as auditexport's trust policy requires one", roleARN)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.roles[roleARN] = externalID
	return nil
}

// isSTSRequest tells an STS Query API call from an S3 request. STS calls go
// to the root path with an Action parameter, in a form body or the query
// string; no S3 operation posts a form to the root.
func isSTSRequest(r *http.Request) bool {
	if r.URL.Path != "/" && r.URL.Path != "" {
		return false
	}
	if r.URL.Query().Has("Action") {
		return true
	}
	return r.Method == http.MethodPost &&
		strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded")
}

func (s *stsService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxSTSBody)
	if err := r.ParseForm(); err != nil {
		writeSTSError(w, http.StatusBadRequest, "InvalidParameterValue", "The request body is not a valid form: "+err.Error())
		return
	}
	switch action := r.Form.Get("Action"); action {
	case "AssumeRole":
		s.assumeRole(w, r)
	default:
		writeSTSError(w, http.StatusBadRequest, "InvalidAction",
			fmt.Sprintf("Could not find operation %s for version 2011-06-15 (this server answers AssumeRole only)", action))
	}
}

func (s *stsService) assumeRole(w http.ResponseWriter, r *http.Request) {
	roleARN, name := r.Form.Get("RoleArn"), r.Form.Get("RoleSessionName")
	duration, msg := assumeRoleInput(roleARN, name, r.Form.Get("DurationSeconds"))
	if msg != "" {
		writeSTSError(w, http.StatusBadRequest, "ValidationError", msg)
		return
	}

	s.mu.Lock()
	want, known := s.roles[roleARN]
	s.mu.Unlock()
	// AWS answers an unknown role, a missing external id and a wrong one
	// alike, so that a caller cannot probe which roles exist.
	if !known || r.Form.Get("ExternalId") != want {
		writeSTSError(w, http.StatusForbidden, "AccessDenied",
			fmt.Sprintf("%s is not authorized to perform: sts:AssumeRole on resource: %s", caller(r), roleARN))
		return
	}

	sess := session{secret: randomString(30), token: randomString(96), expires: s.clock.Now().Add(duration)}
	keyID := "ASIA" + randomBase32(10)
	s.mu.Lock()
	s.sessions[keyID] = sess
	s.mu.Unlock()

	m := roleARNRe.FindStringSubmatch(roleARN)
	account, roleName := m[1], m[2]
	resp := assumeRoleResponse{
		Xmlns: stsNamespace,
		Result: assumeRoleResult{
			User: assumedRoleUser{
				ARN: fmt.Sprintf("arn:aws:sts::%s:assumed-role/%s/%s", account, roleName, name),
				ID:  "AROA" + randomBase32(10) + ":" + name,
			},
			Credentials: stsCredentials{
				AccessKeyID:     keyID,
				SecretAccessKey: sess.secret,
				SessionToken:    sess.token,
				Expiration:      sess.expires.UTC().Format(time.RFC3339),
			},
		},
		RequestID: randomRequestID(),
	}
	writeSTSXML(w, http.StatusOK, resp)
}

// assumeRoleInput checks AssumeRole's parameters as AWS does and returns the
// session duration, or the message of a ValidationError.
func assumeRoleInput(roleARN, sessionName, durationSeconds string) (time.Duration, string) {
	switch {
	case roleARN == "":
		return 0, "1 validation error detected: Value null at 'roleArn' failed to satisfy constraint: Member must not be null"
	case !roleARNRe.MatchString(roleARN):
		return 0, fmt.Sprintf("%s is invalid", roleARN)
	case sessionName == "":
		return 0, "1 validation error detected: Value null at 'roleSessionName' failed to satisfy constraint: Member must not be null"
	case !sessionNameRe.MatchString(sessionName):
		return 0, fmt.Sprintf("1 validation error detected: Value '%s' at 'roleSessionName' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\w+=,.@-]{2,64}", sessionName)
	}
	if durationSeconds == "" {
		return defaultSessionDuration, ""
	}
	secs, err := strconv.Atoi(durationSeconds)
	d := time.Duration(secs) * time.Second
	if err != nil || d < minSessionDuration || d > maxSessionDuration {
		return 0, fmt.Sprintf("The requested DurationSeconds %s is not between %d and %d seconds",
			durationSeconds, int(minSessionDuration.Seconds()), int(maxSessionDuration.Seconds()))
	}
	return d, ""
}

// caller names who signed r, for error messages.
func caller(r *http.Request) string {
	if id := accessKeyID(r); id != "" {
		return "The caller with access key " + id
	}
	return "An anonymous caller"
}

// accessKeyID is the access key id that signed r, from its Authorization
// header or, for a presigned URL, its X-Amz-Credential parameter.
func accessKeyID(r *http.Request) string {
	if m := credentialRe.FindStringSubmatch(r.Header.Get("Authorization")); m != nil {
		return m[1]
	}
	id, _, _ := strings.Cut(r.URL.Query().Get("X-Amz-Credential"), "/")
	return id
}

// checkSessions refuses S3 requests that carry a session token this server
// did not issue for their access key, or one that has expired, with the
// errors S3 sends. Requests without a session token pass: static keys are
// not checked.
func (s *stsService) checkSessions(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := r.Header.Get("X-Amz-Security-Token")
		if token == "" {
			token = r.URL.Query().Get("X-Amz-Security-Token")
		}
		if token == "" {
			next.ServeHTTP(w, r)
			return
		}
		s.mu.Lock()
		sess, ok := s.sessions[accessKeyID(r)]
		s.mu.Unlock()
		switch {
		case !ok || sess.token != token:
			_, _ = io.Copy(io.Discard, r.Body)
			writeError(w, http.StatusBadRequest, s3Error{
				Code:    "InvalidToken",
				Message: "The provided token is malformed or otherwise invalid.",
			})
		case !s.clock.Now().Before(sess.expires):
			_, _ = io.Copy(io.Discard, r.Body)
			writeError(w, http.StatusBadRequest, s3Error{
				Code:    "ExpiredToken",
				Message: "The provided token has expired.",
			})
		default:
			next.ServeHTTP(w, r)
		}
	})
}

type assumeRoleResponse struct {
	XMLName   xml.Name         `xml:"AssumeRoleResponse"`
	Xmlns     string           `xml:"xmlns,attr"`
	Result    assumeRoleResult `xml:"AssumeRoleResult"`
	RequestID string           `xml:"ResponseMetadata>RequestId"`
}

type assumeRoleResult struct {
	User        assumedRoleUser `xml:"AssumedRoleUser"`
	Credentials stsCredentials  `xml:"Credentials"`
}

type assumedRoleUser struct {
	ARN string `xml:"Arn"`
	ID  string `xml:"AssumedRoleId"`
}

type stsCredentials struct {
	AccessKeyID     string `xml:"AccessKeyId"`
	SecretAccessKey string
	SessionToken    string
	Expiration      string
}

// stsErrorResponse is the error body of the Query API.
type stsErrorResponse struct {
	XMLName xml.Name `xml:"ErrorResponse"`
	Xmlns   string   `xml:"xmlns,attr"`
	Error   struct {
		Type    string
		Code    string
		Message string
	}
	RequestID string `xml:"RequestId"`
}

func writeSTSError(w http.ResponseWriter, status int, code, message string) {
	e := stsErrorResponse{Xmlns: stsNamespace}
	e.Error.Type, e.Error.Code, e.Error.Message = "Sender", code, message
	e.RequestID = randomRequestID()
	writeSTSXML(w, status, e)
}

func writeSTSXML(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(v)
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails, see crypto/rand.Read
	return b
}

func randomString(n int) string {
	return base64.RawStdEncoding.EncodeToString(randomBytes(n))
}

func randomBase32(n int) string {
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(randomBytes(n))
}

func randomRequestID() string {
	b := randomBytes(16)
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
