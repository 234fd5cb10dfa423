package config

import "reflect"

// Changed lists the keys of the settings that differ between r and next,
// as the YAML paths of the leaf values ("sftp.listen", "limits.max_connections",
// "storage.s3.bucket"; a list as a whole: "hooks", "sftp.host_keys"), in the
// order the fields are declared. It walks the types, so a key added to
// Restart is compared without being listed anywhere.
//
// What the file says is compared, not how it was read: fields that are not
// YAML keys (line numbers) are skipped, and an empty list equals an absent
// one, which every restart-only list reads the same way.
//
// Fields tagged `reload:"live"` are not compared: a reload applies them.
func (r *Restart) Changed(next *Restart) []string {
	var keys []string
	changedKeys(reflect.ValueOf(r).Elem(), reflect.ValueOf(next).Elem(), "", &keys)
	return keys
}

// Reloaded is what a reload puts in force when r is in force and next was
// read: r, with next's values of the fields tagged `reload:"live"`. The
// keys of the other fields that differ (Changed) need a restart.
func (r *Restart) Reloaded(next *Restart) (Restart, []string) {
	out := *r
	copyLive(reflect.ValueOf(&out).Elem(), reflect.ValueOf(next).Elem())
	return out, r.Changed(next)
}

// appliedLive reports whether a reload applies f although it sits in
// Restart.
func appliedLive(f reflect.StructField) bool { return f.Tag.Get("reload") == "live" }

// copyLive sets each field of dst tagged `reload:"live"`, at any depth of
// structs, to src's.
func copyLive(dst, src reflect.Value) {
	for i := range dst.NumField() {
		f := dst.Type().Field(i)
		switch {
		case !f.IsExported():
		case appliedLive(f):
			dst.Field(i).Set(src.Field(i))
		case f.Type.Kind() == reflect.Struct:
			copyLive(dst.Field(i), src.Field(i))
		}
	}
}

// changedKeys appends to keys the path of each leaf of the struct values a
// and b (of one type) that differs.
func changedKeys(a, b reflect.Value, path string, keys *[]string) {
	if a.Kind() != reflect.Struct {
		if !sameValue(a, b) {
			*keys = append(*keys, path)
		}
		return
	}
	for i := range a.NumField() {
		f := a.Type().Field(i)
		name, inline, ok := yamlKey(f)
		if !ok || appliedLive(f) {
			continue
		}
		sub := path
		if !inline {
			sub = joinPath(path, name)
		}
		changedKeys(a.Field(i), b.Field(i), sub, keys)
	}
}

// sameValue reports whether a and b (of one type) hold the same settings:
// reflect.DeepEqual, except that fields which are not YAML keys are
// skipped and a nil slice or map equals an empty one.
func sameValue(a, b reflect.Value) bool {
	switch a.Kind() {
	case reflect.Struct:
		for i := range a.NumField() {
			if _, _, ok := yamlKey(a.Type().Field(i)); ok && !sameValue(a.Field(i), b.Field(i)) {
				return false
			}
		}
		return true
	case reflect.Slice, reflect.Array:
		if a.Len() != b.Len() {
			return false
		}
		for i := range a.Len() {
			if !sameValue(a.Index(i), b.Index(i)) {
				return false
			}
		}
		return true
	case reflect.Pointer, reflect.Interface:
		if a.IsNil() || b.IsNil() {
			return a.IsNil() == b.IsNil()
		}
		if a.Kind() == reflect.Interface && a.Elem().Type() != b.Elem().Type() {
			return false
		}
		return sameValue(a.Elem(), b.Elem())
	case reflect.Map:
		if a.Len() != b.Len() {
			return false
		}
		for it := a.MapRange(); it.Next(); {
			bv := b.MapIndex(it.Key())
			if !bv.IsValid() || !sameValue(it.Value(), bv) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(a.Interface(), b.Interface())
	}
}
