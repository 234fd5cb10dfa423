package sftpd

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/pkg/sftp"
)

// packet frames an SFTP packet: length, type, then the fields.
func packet(typ byte, fields ...any) []byte {
	b := []byte{0, 0, 0, 0, typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		case string:
			b = appendString(b, v)
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}

func readPacket(t *testing.T, r io.Reader) (byte, []byte) {
	t.Helper()
	var l [4]byte
	if _, err := io.ReadFull(r, l[:]); err != nil {
		t.Fatalf("read packet length: %v", err)
	}
	b := make([]byte, binary.BigEndian.Uint32(l[:]))
	if _, err := io.ReadFull(r, b); err != nil {
		t.Fatalf("read packet: %v", err)
	}
	return b[0], b[1:]
}

// TestLimitsExtension drives a real request server through limitsStream
// with raw packets, as OpenSSH's client sends them.
func TestLimitsExtension(t *testing.T) {
	server, client := net.Pipe()
	rs := sftp.NewRequestServer(newLimitsStream(server, 7), sftp.InMemHandler())
	done := make(chan error, 1)
	go func() { done <- rs.Serve() }()
	t.Cleanup(func() {
		client.Close()
		server.Close()
		<-done
	})
	send := func(p []byte) {
		t.Helper()
		if _, err := client.Write(p); err != nil {
			t.Fatal(err)
		}
	}

	send(packet(1, uint32(3))) // INIT, version 3
	typ, body := readPacket(t, client)
	if typ != fxpVersion {
		t.Fatalf("reply to INIT: type %d", typ)
	}
	exts := map[string]string{}
	for rest := body[4:]; len(rest) > 0; {
		var name, data string
		name, rest = cutString(t, rest)
		data, rest = cutString(t, rest)
		exts[name] = data
	}
	if exts[limitsExtension] != "1" || exts["posix-rename@openssh.com"] != "1" {
		t.Fatalf("VERSION extensions: %v", exts)
	}

	// The limits request is answered between two requests pkg/sftp answers.
	// net.Pipe has no buffer: write while the replies are read, as an SSH
	// channel's window lets a client do.
	sent := make(chan error, 1)
	go func() {
		var err error
		for _, p := range [][]byte{
			packet(16, uint32(1), "."),                      // REALPATH
			packet(fxpExtended, uint32(2), limitsExtension), // limits
			packet(16, uint32(3), "/"),                      // REALPATH
		} {
			if _, err = client.Write(p); err != nil {
				break
			}
		}
		sent <- err
	}()
	replies := map[uint32][]byte{}
	types := map[uint32]byte{}
	for range 3 {
		typ, body := readPacket(t, client)
		id := binary.BigEndian.Uint32(body)
		types[id], replies[id] = typ, body[4:]
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if types[1] != 104 || types[3] != 104 { // NAME
		t.Fatalf("REALPATH replies: types %v", types)
	}
	if types[2] != fxpExtendedReply || len(replies[2]) != 32 {
		t.Fatalf("limits reply: type %d, %d bytes", types[2], len(replies[2]))
	}
	var got [4]uint64
	for i := range got {
		got[i] = binary.BigEndian.Uint64(replies[2][8*i:])
	}
	if want := [4]uint64{262144, 261120, 261120, 7}; got != want {
		t.Fatalf("limits: %v, want %v", got, want)
	}

	// Other extended requests still reach pkg/sftp, which refuses those it
	// does not know with SSH_FX_OP_UNSUPPORTED.
	send(packet(fxpExtended, uint32(4), "limits@example.com"))
	typ, body = readPacket(t, client)
	if typ != 101 || binary.BigEndian.Uint32(body) != 4 || binary.BigEndian.Uint32(body[4:]) != 8 {
		t.Fatalf("unknown extension: type %d, body %x", typ, body)
	}
}

func cutString(t *testing.T, b []byte) (string, []byte) {
	t.Helper()
	if len(b) < 4 || len(b) < 4+int(binary.BigEndian.Uint32(b)) {
		t.Fatalf("truncated string in %x", b)
	}
	n := 4 + int(binary.BigEndian.Uint32(b))
	return string(b[4:n]), b[n:]
}

// TestLimitsReplyWaitsForPacketBoundary checks that a limits reply never
// lands between the header and the payload pkg/sftp writes separately.
func TestLimitsReplyWaitsForPacketBoundary(t *testing.T) {
	var out bytes.Buffer
	s := newLimitsStream(struct {
		io.Reader
		io.Writer
	}{bytes.NewReader(nil), &out}, 0)
	if _, err := s.Write(packet(fxpVersion, uint32(3))); err != nil {
		t.Fatal(err)
	}
	out.Reset()

	data := packet(103, uint32(9), "payload") // DATA, written as header + payload
	if _, err := s.Write(data[:13]); err != nil {
		t.Fatal(err)
	}
	if err := s.answer(5); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 13 {
		t.Fatalf("reply written inside a packet: %x", out.Bytes())
	}
	if _, err := s.Write(data[13:]); err != nil {
		t.Fatal(err)
	}
	typ, body := readPacket(t, &out)
	if typ != 103 || !bytes.Equal(body, data[5:]) {
		t.Fatalf("first packet: type %d %x", typ, body)
	}
	typ, body = readPacket(t, &out)
	if typ != fxpExtendedReply || binary.BigEndian.Uint32(body) != 5 {
		t.Fatalf("second packet: type %d %x", typ, body)
	}
	if out.Len() != 0 {
		t.Fatalf("trailing bytes: %x", out.Bytes())
	}
}
