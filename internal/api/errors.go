package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"strings"
	"syscall"

	"github.com/wharf-sftp/wharf/internal/config"
	"github.com/wharf-sftp/wharf/internal/configedit"
)

// Error is an API error, sent as {"error": {...}}.
type Error struct {
	Status  int      `json:"-"`
	Code    string   `json:"code"`
	Message string   `json:"message"`
	Field   string   `json:"field,omitempty"` // the input field at fault, as the request names it
	Details []Detail `json:"details,omitempty"`
}

// Detail is one problem of several, each with its field.
type Detail struct {
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

func (e *Error) Error() string { return e.Message }

// maxBody bounds every request body: a partner with many keys is a few
// kilobytes.
const maxBody = 1 << 20

func writeJSON(w http.ResponseWriter, status int, body any) {
	if body == nil {
		w.WriteHeader(status)
		return
	}
	data, err := json.Marshal(body)
	if err != nil {
		// Only a value the API built itself gets here; none can fail.
		status, data = http.StatusInternalServerError, []byte(`{"error":{"code":"internal","message":"encode response"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(data, '\n'))
}

func writeError(w http.ResponseWriter, e *Error) {
	writeJSON(w, e.Status, struct {
		Error *Error `json:"error"`
	}{e})
}

func badRequest(field, format string, args ...any) *Error {
	return &Error{Status: http.StatusBadRequest, Code: "bad_request", Message: fmt.Sprintf(format, args...), Field: field}
}

// readJSON decodes the request's JSON body into v: 415 for another media
// type, 413 beyond maxBody, 400 for what is not JSON of v's shape
// (unknown fields included: a typo must not be silently ignored).
func readJSON(w http.ResponseWriter, r *http.Request, v any, types ...string) error {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if types == nil {
		types = []string{"application/json"}
	}
	ok := false
	for _, t := range types {
		ok = ok || (err == nil && mt == t)
	}
	if !ok {
		return &Error{Status: http.StatusUnsupportedMediaType, Code: "unsupported_media_type",
			Message: "send the body as " + strings.Join(types, " or ")}
	}
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return decodeError(err)
		}
		return badRequest("", "invalid JSON: more than one value in the body")
	}
	return nil
}

func decodeError(err error) *Error {
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: "too_large", Message: fmt.Sprintf("the body is larger than %d bytes", tooBig.Limit)}
	case errors.As(err, &syntax):
		return badRequest("", "invalid JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typ):
		return badRequest(typ.Field, "%s: want %s, got JSON %s", typ.Field, typ.Type.String(), typ.Value)
	case errors.Is(err, io.EOF):
		return badRequest("", "empty body: want a JSON object")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "invalid JSON: the body ends early")
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return badRequest(f, "unknown field %q", f)
	}
	return badRequest("", "invalid JSON: %s", strings.TrimPrefix(msg, "json: "))
}

// apiError maps what a handler returned to the API's error: its own, or
// configedit's in the words `wharf user` and `wharf config check` use.
func (s *Server) apiError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	var ie *configedit.InputError
	if errors.As(err, &ie) {
		return inputError(ie, nil)
	}
	msg := err.Error()
	switch {
	case errors.Is(err, configedit.ErrChanged):
		if !strings.Contains(msg, "changed concurrently") {
			msg = "changed concurrently, try again: " + msg
		}
		return &Error{Status: http.StatusConflict, Code: "conflict", Message: msg}
	case errors.Is(err, configedit.ErrUnknownUser), errors.Is(err, configedit.ErrUnknownKey):
		return &Error{Status: http.StatusNotFound, Code: "not_found", Message: msg}
	case errors.Is(err, configedit.ErrUserExists), errors.Is(err, configedit.ErrDuplicateKey):
		return &Error{Status: http.StatusConflict, Code: "exists", Message: msg}
	case errors.Is(err, configedit.ErrInvalid):
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Message: msg}
	case errors.Is(err, fs.ErrPermission), errors.Is(err, syscall.EROFS):
		// The daemon may not write where the partner is kept (a file the
		// systemd unit makes read-only, a bucket its credentials may not
		// write): the deployment's doing, not a fault of the request.
		return &Error{Status: http.StatusConflict, Code: "not_editable", Message: msg +
			": the daemon may not write where this partner is kept; give it write access there, or keep partners in a users_dir it may write (under deploy/wharf.service, beneath /var/lib/wharf)"}
	}
	if fe := firstFieldError(err); fe != nil {
		// The config in place, or the config the change would make, fails
		// start-up's checks: the message is `wharf config check`'s, with
		// file and line.
		if strings.HasPrefix(msg, "the config is not valid") {
			return &Error{Status: http.StatusConflict, Code: "config_invalid", Message: msg, Field: fe.Field}
		}
		return &Error{Status: http.StatusUnprocessableEntity, Code: "invalid", Message: msg, Field: fe.Field}
	}
	return &Error{Status: http.StatusInternalServerError, Code: "internal", Message: msg}
}

// inputError renders configedit's problems with the fields of the request:
// rename maps a users_dir field ("public_keys[0]") to the request's.
func inputError(ie *configedit.InputError, rename func(string) string) *Error {
	e := &Error{Status: http.StatusUnprocessableEntity, Code: "invalid"}
	var msgs []string
	for _, p := range ie.Problems {
		f := p.Field
		if rename != nil && f != "" {
			f = rename(f)
		}
		d := Detail{Field: f, Message: p.Msg}
		e.Details = append(e.Details, d)
		if f != "" {
			msgs = append(msgs, f+": "+p.Msg)
		} else {
			msgs = append(msgs, p.Msg)
		}
	}
	e.Message = strings.Join(msgs, "; ")
	if len(e.Details) > 0 {
		e.Field = e.Details[0].Field
	}
	return e
}

// firstFieldError is the first *config.FieldError joined in err, or nil.
func firstFieldError(err error) *config.FieldError {
	var walk func(error) *config.FieldError
	walk = func(err error) *config.FieldError {
		if fe, ok := err.(*config.FieldError); ok {
			return fe
		}
		switch u := err.(type) {
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if fe := walk(e); fe != nil {
					return fe
				}
			}
		case interface{ Unwrap() error }:
			if e := u.Unwrap(); e != nil {
				return walk(e)
			}
		}
		return nil
	}
	return walk(err)
}
