package sfu

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// machineCPU returns, from /proc/stat, the time all the machine's CPUs
// have spent busy (user, nice, system, interrupts) and in all (busy,
// idle, I/O wait, stolen by the hypervisor) since boot, in clock ticks,
// and the number of CPUs.
func machineCPU() (busy, total uint64, cpus int, err error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return 0, 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		switch {
		case len(fields) > 0 && fields[0] == "cpu":
			// user nice system idle iowait irq softirq steal (guest
			// time is counted in user already)
			if len(fields) < 9 {
				return 0, 0, 0, fmt.Errorf("/proc/stat: short cpu line %q", sc.Text())
			}
			for i, s := range fields[1:9] {
				v, err := strconv.ParseUint(s, 10, 64)
				if err != nil {
					return 0, 0, 0, fmt.Errorf("/proc/stat: %w", err)
				}
				total += v
				if i != 3 && i != 4 && i != 7 {
					busy += v
				}
			}
		case len(fields) > 0 && strings.HasPrefix(fields[0], "cpu"):
			cpus++
		}
	}
	if err := sc.Err(); err != nil {
		return 0, 0, 0, err
	}
	if total == 0 || cpus == 0 {
		return 0, 0, 0, fmt.Errorf("/proc/stat: no cpu lines")
	}
	return busy, total, cpus, nil
}
