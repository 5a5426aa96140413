//go:build !linux

package sfu

import (
	"net"
	"net/netip"
)

// Elsewhere than on Linux the fast path uses the socket's ordinary
// methods (see fastio_linux.go for what Linux does instead).

type sockaddr struct{ addr netip.AddrPort }

func makeSockaddr(a netip.AddrPort) sockaddr { return sockaddr{a} }

type mediaIO struct{}

type sendState struct{}

func newMediaConn(udp *net.UDPConn, s *SFU) (*mediaConn, error) {
	return &mediaConn{UDPConn: udp, s: s}, nil
}

// ReadFromAddrPort returns the next packet that the fast path does not
// take.
func (c *mediaConn) ReadFromAddrPort(b []byte) (int, netip.AddrPort, error) {
	for {
		n, addr, err := c.UDPConn.ReadFromUDPAddrPort(b)
		if err != nil || !c.s.take(b[:n], addr) {
			return n, addr, err
		}
	}
}

// sendTo sends a packet of the fast path to its device. k.mu is held.
func (c *mediaConn) sendTo(k *sendKeys, pkt []byte, f *fastLine) error {
	_, err := c.UDPConn.WriteToUDPAddrPort(pkt, f.to.addr)
	return err
}
