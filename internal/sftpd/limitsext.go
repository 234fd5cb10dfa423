package sftpd

import (
	"bufio"
	"encoding/binary"
	"io"
	"sync"
)

// OpenSSH's client sends 32 KiB READ and WRITE requests unless the server
// answers the limits@openssh.com extension, and then uses the lengths the
// server gives: eight times fewer packets, round trips and allocations per
// byte. pkg/sftp can neither advertise nor answer it (SetSFTPExtensions
// refuses names it does not implement), so limitsStream, set between the
// SSH channel and the request server, does both, using the packet framing
// alone: it appends the extension to the VERSION reply and answers the
// request itself. Every other byte passes through untouched.
//
// The figures are OpenSSH sftp-server's, which every OpenSSH client knows
// how to use, and fit pkg/sftp's own bound on an incoming packet
// (256 KiB after the length field).
const (
	limitsExtension = "limits@openssh.com"
	maxPacketLength = 256 << 10
	// maxDataLength is the largest READ or WRITE payload: a packet's
	// length less room for the request's other fields.
	maxDataLength = maxPacketLength - 1024
)

// SFTP packet types (draft-ietf-secsh-filexfer-02).
const (
	fxpVersion       = 2
	fxpExtended      = 200
	fxpExtendedReply = 201
)

type limitsStream struct {
	ch     io.ReadWriter
	r      *bufio.Reader
	inLeft int // bytes of the current incoming packet not yet passed on

	// reply is the EXTENDED_REPLY body after the request id.
	reply []byte

	mu sync.Mutex // serializes writes to ch and guards what follows
	// outLeft counts the bytes of the outgoing packet pkg/sftp is writing
	// (it writes header and payload separately); replies wait until it is
	// 0 so that they never land inside another packet.
	outLeft   int
	versioned bool     // VERSION has gone out, with the extension in it
	untracked bool     // outgoing framing lost: stop answering, pass requests on
	pending   [][]byte // replies waiting for a packet boundary
	werr      error
}

func newLimitsStream(ch io.ReadWriter, maxHandles int) *limitsStream {
	reply := make([]byte, 0, 32)
	reply = binary.BigEndian.AppendUint64(reply, maxPacketLength)
	reply = binary.BigEndian.AppendUint64(reply, maxDataLength)
	reply = binary.BigEndian.AppendUint64(reply, maxDataLength)
	reply = binary.BigEndian.AppendUint64(reply, uint64(max(maxHandles, 0))) // 0: no limit
	// The buffer only needs to hold a limits request for Peek; reads as
	// long as it go straight to the channel. Every idle session keeps it.
	return &limitsStream{ch: ch, r: bufio.NewReaderSize(ch, 256), reply: reply}
}

// Read passes on the client's packets, holding back limits requests.
func (s *limitsStream) Read(p []byte) (int, error) {
	for s.inLeft == 0 {
		hdr, err := s.r.Peek(4)
		if err != nil {
			if len(hdr) == 0 {
				return 0, err
			}
			// A truncated length: pkg/sftp reports it.
			s.inLeft = len(hdr)
			break
		}
		length := int(binary.BigEndian.Uint32(hdr))
		// Only a packet of the limits request's length is looked into:
		// waiting for its type byte must not stall a malformed (empty)
		// packet that pkg/sftp refuses from its length alone.
		if s.limitsLength(length) && s.answering() {
			if id, ok := s.limitsRequest(length); ok {
				if _, err := s.r.Discard(4 + length); err != nil {
					return 0, err
				}
				if err := s.answer(id); err != nil {
					return 0, err
				}
				continue
			}
		}
		s.inLeft = 4 + length
	}
	n, err := s.r.Read(p[:min(len(p), s.inLeft)])
	s.inLeft -= n
	return n, err
}

// limitsRequest reports whether the packet at the head of the stream, of
// the given length, is a limits request, and its id.
func (s *limitsStream) limitsRequest(length int) (uint32, bool) {
	pkt, err := s.r.Peek(4 + length)
	if err != nil {
		return 0, false
	}
	if pkt[4] != fxpExtended || binary.BigEndian.Uint32(pkt[9:]) != uint32(len(limitsExtension)) || string(pkt[13:]) != limitsExtension {
		return 0, false
	}
	return binary.BigEndian.Uint32(pkt[5:]), true
}

// limitsLength reports whether a packet of that length (after the length
// field) could be a limits request: type, id, name; OpenSSH sends no
// extension data.
func (*limitsStream) limitsLength(length int) bool {
	return length == 1+4+4+len(limitsExtension)
}

func (s *limitsStream) answering() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.versioned && !s.untracked
}

func (s *limitsStream) answer(id uint32) error {
	pkt := make([]byte, 0, 4+1+4+len(s.reply))
	pkt = binary.BigEndian.AppendUint32(pkt, uint32(1+4+len(s.reply)))
	pkt = append(pkt, fxpExtendedReply)
	pkt = binary.BigEndian.AppendUint32(pkt, id)
	pkt = append(pkt, s.reply...)

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.outLeft > 0 {
		s.pending = append(s.pending, pkt)
		return s.werr
	}
	return s.write(pkt)
}

// Write passes on pkg/sftp's replies, adding the extension to VERSION.
func (s *limitsStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.untracked {
		return s.ch.Write(p)
	}
	out := p
	if s.outLeft == 0 {
		if len(p) < 5 {
			s.untracked = true
			return s.ch.Write(p)
		}
		length := int(binary.BigEndian.Uint32(p))
		if !s.versioned {
			s.versioned = true
			if p[4] == fxpVersion && 4+length == len(p) {
				out = appendString(appendString(append([]byte(nil), p...), limitsExtension), "1")
				binary.BigEndian.PutUint32(out, uint32(len(out)-4))
				length = len(out) - 4
			}
		}
		s.outLeft = 4 + length
	}
	if len(out) > s.outLeft {
		s.untracked = true
	}
	if err := s.write(out); err != nil {
		return 0, err
	}
	s.outLeft -= len(out)
	for s.outLeft == 0 && len(s.pending) > 0 {
		pkt := s.pending[0]
		s.pending = s.pending[1:]
		if err := s.write(pkt); err != nil {
			return len(p), err
		}
	}
	return len(p), nil
}

// write sends b whole; the caller holds mu.
func (s *limitsStream) write(b []byte) error {
	if s.werr != nil {
		return s.werr
	}
	if _, err := s.ch.Write(b); err != nil {
		s.werr = err
		return err
	}
	return nil
}

func appendString(b []byte, str string) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(len(str)))
	return append(b, str...)
}

// Close is a no-op: the channel outlives the request server (see serveSFTP).
func (s *limitsStream) Close() error { return nil }
