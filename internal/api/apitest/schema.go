// Package apitest checks admin API responses against the OpenAPI document,
// for tests. It implements the part of JSON Schema 2020-12 (OpenAPI 3.1's
// dialect) that the document uses, and refuses any keyword beyond it, so
// that the document cannot say more than the tests check.
package apitest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"mime"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Doc is a parsed OpenAPI document.
type Doc struct {
	root map[string]any
}

// Load parses an OpenAPI 3.1 document and checks that every schema in it
// uses only keywords this package checks.
func Load(data []byte) (*Doc, error) {
	v, err := decode(data)
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	root, ok := v.(map[string]any)
	if !ok || !strings.HasPrefix(str(root["openapi"]), "3.1.") {
		return nil, errors.New("openapi: want an OpenAPI 3.1 document")
	}
	d := &Doc{root: root}
	if comps, ok := root["components"].(map[string]any); ok {
		if schemas, ok := comps["schemas"].(map[string]any); ok {
			for name, s := range schemas {
				if err := d.lint(s, "#/components/schemas/"+name); err != nil {
					return nil, err
				}
			}
		}
	}
	paths, _ := root["paths"].(map[string]any)
	for p, item := range paths {
		for m, op := range item.(map[string]any) {
			o, ok := op.(map[string]any)
			if !ok || m == "parameters" {
				continue
			}
			resps, _ := o["responses"].(map[string]any)
			for code, r := range resps {
				if s, ok := d.responseSchema(r); ok {
					if err := d.lint(s, fmt.Sprintf("%s %s %s", m, p, code)); err != nil {
						return nil, err
					}
				}
			}
		}
	}
	return d, nil
}

// annotations are keywords that constrain nothing.
var annotations = []string{"description", "title", "examples", "default"}

// keywords are those validate implements.
var keywords = []string{"$ref", "type", "enum", "format", "minimum", "maximum", "properties", "required", "additionalProperties", "items", "oneOf"}

func (d *Doc) lint(s any, at string) error {
	m, ok := s.(map[string]any)
	if !ok {
		if _, isBool := s.(bool); isBool {
			return nil
		}
		return fmt.Errorf("%s: a schema must be an object", at)
	}
	for k, v := range m {
		switch {
		case slices.Contains(annotations, k):
		case !slices.Contains(keywords, k):
			return fmt.Errorf("%s: keyword %q is not checked by apitest", at, k)
		case k == "$ref":
			if _, err := d.resolve(str(v)); err != nil {
				return fmt.Errorf("%s: %w", at, err)
			}
		case k == "format" && v != "date-time":
			return fmt.Errorf("%s: format %q is not checked by apitest", at, v)
		case k == "properties":
			for name, p := range v.(map[string]any) {
				if err := d.lint(p, at+"/"+name); err != nil {
					return err
				}
			}
		case k == "items" || k == "additionalProperties":
			if err := d.lint(v, at+"/"+k); err != nil {
				return err
			}
		case k == "oneOf":
			for i, p := range v.([]any) {
				if err := d.lint(p, fmt.Sprintf("%s/oneOf/%d", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// Operation returns the operation object of method on the path template.
func (d *Doc) Operation(method, path string) (map[string]any, error) {
	paths, _ := d.root["paths"].(map[string]any)
	item, ok := paths[path].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no path %s in the document", path)
	}
	op, ok := item[strings.ToLower(method)].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("no %s %s in the document", method, path)
	}
	return op, nil
}

// CheckResponse checks a response to method on the path template against
// the document: its status must be one the operation lists, and its body
// must be the JSON its schema describes (or empty, when none is given).
func (d *Doc) CheckResponse(method, path string, status int, contentType string, body []byte) error {
	op, err := d.Operation(method, path)
	if err != nil {
		return err
	}
	resps, _ := op["responses"].(map[string]any)
	r, ok := resps[strconv.Itoa(status)]
	if !ok {
		return fmt.Errorf("%s %s: status %d is not documented", method, path, status)
	}
	if mt, magic, ok := d.binaryContent(r); ok {
		// A file (the onboarding packet): its media type, and the first
		// bytes every file of that type starts with.
		if got, _, err := mime.ParseMediaType(contentType); err != nil || got != mt {
			return fmt.Errorf("%s %s %d: Content-Type %q, want %s", method, path, status, contentType, mt)
		}
		if !bytes.HasPrefix(body, magic) {
			return fmt.Errorf("%s %s %d: the body is not %s", method, path, status, mt)
		}
		return nil
	}
	schema, ok := d.responseSchema(r)
	if !ok {
		if len(bytes.TrimSpace(body)) != 0 {
			return fmt.Errorf("%s %s %d: a body where the document has none: %s", method, path, status, body)
		}
		return nil
	}
	if mt, _, err := mime.ParseMediaType(contentType); err != nil || mt != "application/json" {
		return fmt.Errorf("%s %s %d: Content-Type %q, want application/json", method, path, status, contentType)
	}
	v, err := decode(body)
	if err != nil {
		return fmt.Errorf("%s %s %d: %w", method, path, status, err)
	}
	if err := d.Validate(schema, v); err != nil {
		return fmt.Errorf("%s %s %d: %w", method, path, status, err)
	}
	return nil
}

// binaryMagic are the media types of files a response may be, with the
// bytes such a file starts with.
var binaryMagic = map[string][]byte{"application/zip": []byte("PK\x03\x04")}

// binaryContent is the media type of a response object that is a file
// (a schema of type string, format binary), and its magic bytes.
func (d *Doc) binaryContent(r any) (string, []byte, bool) {
	m, _ := r.(map[string]any)
	content, _ := m["content"].(map[string]any)
	for mt, magic := range binaryMagic {
		c, _ := content[mt].(map[string]any)
		if s, _ := c["schema"].(map[string]any); s["type"] == "string" && s["format"] == "binary" {
			return mt, magic, true
		}
	}
	return "", nil, false
}

// responseSchema is the application/json schema of a response object.
func (d *Doc) responseSchema(r any) (any, bool) {
	m, _ := r.(map[string]any)
	if ref, ok := m["$ref"].(string); ok {
		res, err := d.resolve(ref)
		if err != nil {
			return nil, false
		}
		m, _ = res.(map[string]any)
	}
	content, _ := m["content"].(map[string]any)
	js, _ := content["application/json"].(map[string]any)
	s, ok := js["schema"]
	return s, ok
}

// resolve follows a local reference, "#/components/...".
func (d *Doc) resolve(ref string) (any, error) {
	rest, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return nil, fmt.Errorf("reference %q: only local ones are supported", ref)
	}
	var cur any = d.root
	for part := range strings.SplitSeq(rest, "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("reference %q does not resolve", ref)
		}
		if cur, ok = m[part]; !ok {
			return nil, fmt.Errorf("reference %q does not resolve", ref)
		}
	}
	return cur, nil
}

// Validate checks the decoded JSON value v (numbers as json.Number)
// against schema.
func (d *Doc) Validate(schema, v any) error { return d.validate(schema, v, "$") }

func (d *Doc) validate(schema, v any, at string) error {
	if b, ok := schema.(bool); ok {
		if !b {
			return fmt.Errorf("%s: not allowed", at)
		}
		return nil
	}
	s := schema.(map[string]any)
	if ref, ok := s["$ref"].(string); ok {
		target, err := d.resolve(ref)
		if err != nil {
			return err
		}
		if err := d.validate(target, v, at); err != nil {
			return err
		}
	}
	if alts, ok := s["oneOf"].([]any); ok {
		n := 0
		var errs []error
		for _, a := range alts {
			if err := d.validate(a, v, at); err != nil {
				errs = append(errs, err)
			} else {
				n++
			}
		}
		if n != 1 {
			return fmt.Errorf("%s: matches %d of oneOf's schemas, want exactly 1: %v", at, n, errors.Join(errs...))
		}
	}
	if t, ok := s["type"]; ok {
		var types []string
		switch t := t.(type) {
		case string:
			types = []string{t}
		case []any:
			for _, x := range t {
				types = append(types, str(x))
			}
		}
		if !slices.ContainsFunc(types, func(t string) bool { return hasType(v, t) }) {
			return fmt.Errorf("%s: %s, want type %v", at, kind(v), types)
		}
	}
	if e, ok := s["enum"].([]any); ok && !slices.ContainsFunc(e, func(x any) bool { return reflect.DeepEqual(x, v) }) {
		return fmt.Errorf("%s: %v is not one of %v", at, v, e)
	}
	if s["format"] == "date-time" {
		if sv, ok := v.(string); ok {
			if _, err := time.Parse(time.RFC3339Nano, sv); err != nil {
				return fmt.Errorf("%s: %q is not an RFC 3339 date-time", at, sv)
			}
		}
	}
	if n, ok := v.(json.Number); ok {
		x, _ := new(big.Float).SetString(n.String())
		for _, b := range []struct {
			key  string
			less bool // v must not be less than the bound
		}{{"minimum", true}, {"maximum", false}} {
			if bound, ok := s[b.key].(json.Number); ok {
				y, _ := new(big.Float).SetString(bound.String())
				if c := x.Cmp(y); b.less && c < 0 || !b.less && c > 0 {
					return fmt.Errorf("%s: %s is beyond %s %s", at, n, b.key, bound)
				}
			}
		}
	}
	if obj, ok := v.(map[string]any); ok {
		props, _ := s["properties"].(map[string]any)
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := obj[str(r)]; !ok {
					return fmt.Errorf("%s: required property %q is missing", at, str(r))
				}
			}
		}
		for _, k := range sortedKeys(obj) {
			if p, ok := props[k]; ok {
				if err := d.validate(p, obj[k], at+"."+k); err != nil {
					return err
				}
				continue
			}
			if ap, ok := s["additionalProperties"]; ok {
				if err := d.validate(ap, obj[k], at+"."+k); err != nil {
					if ap == false {
						return fmt.Errorf("%s: property %q is not in the schema", at, k)
					}
					return err
				}
			}
		}
	}
	if arr, ok := v.([]any); ok {
		if items, ok := s["items"]; ok {
			for i, x := range arr {
				if err := d.validate(items, x, fmt.Sprintf("%s[%d]", at, i)); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func hasType(v any, t string) bool {
	switch t {
	case "null":
		return v == nil
	case "boolean":
		_, ok := v.(bool)
		return ok
	case "string":
		_, ok := v.(string)
		return ok
	case "object":
		_, ok := v.(map[string]any)
		return ok
	case "array":
		_, ok := v.([]any)
		return ok
	case "number":
		_, ok := v.(json.Number)
		return ok
	case "integer":
		n, ok := v.(json.Number)
		if !ok {
			return false
		}
		_, err := n.Int64()
		return err == nil
	}
	return false
}

func kind(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "a boolean"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case []any:
		return "an array"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

// decode parses one JSON value, numbers as json.Number.
func decode(data []byte) (any, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if dec.More() {
		return nil, errors.New("invalid JSON: more than one value")
	}
	return v, nil
}
