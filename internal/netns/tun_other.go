//go:build !linux

package netns

import (
	"errors"
	"os"
)

func openTUN(name string) (*os.File, error) {
	return nil, errors.New("network namespaces need Linux")
}
