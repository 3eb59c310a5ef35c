package units

import "errors"

var errNotFile = errors.New("not a regular file")

// ParseError names the unit file that could not be read.
type ParseError struct {
	Path string
	Err  error
}

func (e *ParseError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *ParseError) Unwrap() error { return e.Err }
