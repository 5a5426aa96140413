//go:build !unix

package main

// lockProfile does nothing where flock(2) is missing: run one conversation
// command at a time for a profile there (see lock_unix.go).
func lockProfile(dir string) (release func(), err error) { return func() {}, nil }
