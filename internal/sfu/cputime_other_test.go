//go:build !linux

package sfu

import (
	"errors"
	"time"
)

var errNoCPUClock = errors.New("CPU clocks are read on Linux only")

func processCPU() (user, sys time.Duration, err error) { return 0, 0, errNoCPUClock }

func threadCPU() (time.Duration, error) { return 0, errNoCPUClock }
