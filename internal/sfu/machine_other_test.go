//go:build !linux

package sfu

func machineCPU() (busy, total uint64, cpus int, err error) { return 0, 0, 0, errNoCPUClock }
