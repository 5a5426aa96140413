//go:build unix

package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// profileLockFile, in a profile, is locked by the commands that handle the
// device's conversations: the conversation commands and events. The
// client keeps each conversation's group state in memory and saves it over
// the file, so two processes handling the same conversation would each
// overwrite what the other learnt, and one would refuse the other's
// commits as its own that it never made, breaking the conversation on this
// device for good. While locked, the file holds the holder's process ID.
const profileLockFile = "lock"

// lockProfile takes the profile's lock, or fails at once if another
// process holds it. release gives it back (so does the process's end).
func lockProfile(dir string) (release func(), err error) {
	path := filepath.Join(dir, profileLockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			holder := ""
			if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
				holder = " (process " + strings.TrimSpace(string(b)) + ")"
			}
			return nil, withHint(fmt.Errorf("profile %s is in use by another hotline command%s", dir, holder),
				"the commands that handle a device's conversations and event stream (conversation, send, read, attach, chat, events) run one at a time; to follow a conversation and send to it, use hotline chat")
		}
		return nil, fmt.Errorf("lock profile %s: %w", dir, err)
	}
	if err := f.Truncate(0); err == nil {
		fmt.Fprintf(f, "%d\n", os.Getpid())
	}
	return func() {
		f.Truncate(0)
		f.Close()
	}, nil
}
