package registry

import (
	"encoding/json"
	"fmt"
	"net/http"
)

// Error codes of the OCI distribution spec that a read-only registry uses.
const (
	codeBlobUnknown     = "BLOB_UNKNOWN"
	codeDigestInvalid   = "DIGEST_INVALID"
	codeManifestUnknown = "MANIFEST_UNKNOWN"
	codeNameInvalid     = "NAME_INVALID"
	codeNameUnknown     = "NAME_UNKNOWN"
	codeUnauthorized    = "UNAUTHORIZED"
	codeUnsupported     = "UNSUPPORTED"
	codeRangeInvalid    = "RANGE_INVALID" // not in the spec's table; distribution's name for a 416
	codeUnknown         = "UNKNOWN"
)

// apiError is an error a handler returns: the HTTP status, the spec's code,
// and a message for the client. It becomes the spec's JSON error body in
// exactly one place, writeError.
type apiError struct {
	status  int
	code    string
	message string
	detail  any
}

func (e *apiError) Error() string { return fmt.Sprintf("%s: %s", e.code, e.message) }

func errorf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, message: fmt.Sprintf(format, args...)}
}

type errorBody struct {
	Errors []errorEntry `json:"errors"`
}

type errorEntry struct {
	Code    string `json:"code"`
	Message string `json:"message"`
	Detail  any    `json:"detail,omitempty"`
}

func writeError(w http.ResponseWriter, r *http.Request, e *apiError) {
	body, _ := json.Marshal(errorBody{Errors: []errorEntry{{Code: e.code, Message: e.message, Detail: e.detail}}})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.WriteHeader(e.status)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}
