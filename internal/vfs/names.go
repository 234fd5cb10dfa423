package vfs

import "errors"

// ErrBadName is the cause of a refusal to create a name that contains a
// control character. The front ends map it to their "invalid file name"
// reply.
var ErrBadName = errors.New("invalid file name: control characters are not allowed")
