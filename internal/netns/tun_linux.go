package netns

import (
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// openTUN creates the TUN device name (IP packets, no packet information
// header) and returns its file, which is pollable: closing it ends a Read
// in progress. The device goes when the file is closed.
func openTUN(name string) (*os.File, error) {
	fd, err := syscall.Open("/dev/net/tun", syscall.O_RDWR|syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req struct { // struct ifreq
		name  [syscall.IFNAMSIZ]byte
		flags uint16
		_     [22]byte
	}
	copy(req.name[:syscall.IFNAMSIZ-1], name)
	req.flags = syscall.IFF_TUN | syscall.IFF_NO_PI | syscall.IFF_TUN_EXCL
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, uintptr(fd), syscall.TUNSETIFF, uintptr(unsafe.Pointer(&req))); errno != 0 {
		syscall.Close(fd)
		return nil, fmt.Errorf("create TUN device %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), "tun:"+name), nil
}
