//go:build linux

package sfu

import (
	"encoding/binary"
	"net"
	"net/netip"
	"syscall"
	"unsafe"
)

// On Linux the fast path reads and writes the media socket with raw,
// non-blocking system calls, waiting for it through Go's poller only
// when it is empty (or full): a read drains every packet queued before it
// returns to the UDP mux, and neither a read nor a write goes through the
// runtime's system-call bookkeeping. That bookkeeping wakes the runtime's
// monitor thread each time the idle SFU makes a call, and the monitor
// then polls every 20 µs: some 13 % of the SFU's CPU at 50 calls with
// the plain calls (perf). A non-blocking sendto or recvfrom returns in
// microseconds, so the scheduler never needs to take its processor back.

// A sockaddr is a socket address as the kernel takes it.
type sockaddr struct {
	raw [syscall.SizeofSockaddrInet6]byte
	len uint32
}

func makeSockaddr(a netip.AddrPort) sockaddr {
	var sa sockaddr
	if a.Addr().Is4() {
		binary.NativeEndian.PutUint16(sa.raw[0:], syscall.AF_INET)
		binary.BigEndian.PutUint16(sa.raw[2:], a.Port())
		ip := a.Addr().As4()
		copy(sa.raw[4:], ip[:])
		sa.len = syscall.SizeofSockaddrInet4
		return sa
	}
	binary.NativeEndian.PutUint16(sa.raw[0:], syscall.AF_INET6)
	binary.BigEndian.PutUint16(sa.raw[2:], a.Port())
	ip := a.Addr().As16()
	copy(sa.raw[8:], ip[:])
	sa.len = syscall.SizeofSockaddrInet6
	return sa
}

// parseSockaddr returns the address in a raw socket address.
func parseSockaddr(raw *syscall.RawSockaddrAny) (netip.AddrPort, bool) {
	b := (*[syscall.SizeofSockaddrAny]byte)(unsafe.Pointer(raw))
	port := binary.BigEndian.Uint16(b[2:])
	switch raw.Addr.Family {
	case syscall.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), true
	case syscall.AF_INET6:
		return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port), true
	}
	return netip.AddrPort{}, false
}

// mediaIO is the reading state of a mediaConn: one reader, the UDP mux's
// goroutine.
type mediaIO struct {
	rc   syscall.RawConn
	read func(fd uintptr) bool // c.readQueued, made once
	buf  []byte                // the caller's buffer
	n    int                   // what readQueued returns
	from netip.AddrPort
	err  error
	sa   syscall.RawSockaddrAny
}

// sendState is the writing state of a peer's fast path, guarded by its
// sendKeys.mu.
type sendState struct {
	write func(fd uintptr) bool // k.writeOne, made once
	pkt   []byte
	to    *sockaddr
	err   error
}

func newMediaConn(udp *net.UDPConn, s *SFU) (*mediaConn, error) {
	rc, err := udp.SyscallConn()
	if err != nil {
		return nil, err
	}
	c := &mediaConn{UDPConn: udp, s: s}
	c.rc = rc
	c.read = c.readQueued
	return c, nil
}

// ReadFromAddrPort returns the next packet that the fast path does not
// take.
func (c *mediaConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	c.buf, c.n, c.err = b, 0, nil
	if err := c.rc.Read(c.read); err != nil {
		return 0, netip.AddrPort{}, err
	}
	c.buf = nil
	return c.n, c.from, c.err
}

// readQueued reads the packets queued on the socket, forwarding those the
// fast path takes, until one it does not (which it leaves in c.buf, c.n
// and c.from) or until none is left: then it returns false and Read
// waits for more.
func (c *mediaConn) readQueued(fd uintptr) bool {
	for {
		salen := uint32(syscall.SizeofSockaddrAny)
		n, _, errno := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd,
			uintptr(unsafe.Pointer(unsafe.SliceData(c.buf))), uintptr(len(c.buf)), syscall.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&c.sa)), uintptr(unsafe.Pointer(&salen)))
		switch errno {
		case 0:
		case syscall.EAGAIN:
			return false
		case syscall.EINTR:
			continue
		default:
			c.err = errno
			return true
		}
		from, ok := parseSockaddr(&c.sa)
		if !ok {
			continue
		}
		if !c.s.take(c.buf[:n], from) {
			c.n, c.from = int(n), from
			return true
		}
	}
}

// sendTo sends a packet of the fast path to its device. k.mu is held.
func (c *mediaConn) sendTo(k *sendKeys, pkt []byte, f *fastLine) error {
	if k.write == nil {
		k.write = k.writeOne
	}
	k.pkt, k.to, k.err = pkt, &f.to, nil
	err := c.rc.Write(k.write)
	k.pkt, k.to = nil, nil
	if err != nil {
		return err
	}
	return k.err
}

// writeOne sends k.pkt to k.to, or returns false if the socket's buffer
// is full, and Write waits for room.
func (k *sendKeys) writeOne(fd uintptr) bool {
	for {
		_, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, fd,
			uintptr(unsafe.Pointer(unsafe.SliceData(k.pkt))), uintptr(len(k.pkt)), syscall.MSG_DONTWAIT,
			uintptr(unsafe.Pointer(&k.to.raw)), uintptr(k.to.len))
		switch errno {
		case 0:
			return true
		case syscall.EAGAIN:
			return false
		case syscall.EINTR:
			continue
		default:
			k.err = errno
			return true
		}
	}
}
