package sftpd_test

// Malformed SFTP: raw packets (draft-ietf-secsh-filexfer-02) written on the
// sftp subsystem channel of a real daemon, each answered with an error
// status or the end of that one channel, while another user's session keeps
// working and nothing lands outside the home.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/wharf-sftp/wharf/internal/daemon/daemontest"
)

// SFTP packet types and status codes (filexfer-02).
const (
	fxpInit     = 1
	fxpVersion  = 2
	fxpOpen     = 3
	fxpClose    = 4
	fxpRead     = 5
	fxpWrite    = 6
	fxpFsetstat = 10
	fxpOpendir  = 11
	fxpReaddir  = 12
	fxpMkdir    = 14
	fxpStat     = 17
	fxpRename   = 18
	fxpSymlink  = 20
	fxpStatus   = 101
	fxpHandle   = 102
	fxpData     = 103
	fxpName     = 104
	fxpAttrs    = 105
	fxpExtended = 200

	fxOK          = 0
	fxEOF         = 1
	fxNoSuchFile  = 2
	fxDenied      = 3
	fxBadMessage  = 5
	flagRead      = 0x01
	flagWrite     = 0x02
	flagCreat     = 0x08
	flagTrunc     = 0x10
	attrSize      = 0x01
	attrExtended  = 0x80000000
	replyTimeout  = 10 * time.Second
	maxReplyFrame = 1 << 20 // far above what the server may send: pkg/sftp caps at 256 KiB
)

// frame builds one SFTP packet: uint32 length, byte type, then the fields
// (uint32, uint64, string as uint32 length + bytes, []byte raw).
func frame(typ byte, fields ...any) []byte {
	body := []byte{typ}
	for _, f := range fields {
		switch v := f.(type) {
		case uint32:
			body = binary.BigEndian.AppendUint32(body, v)
		case int:
			body = binary.BigEndian.AppendUint32(body, uint32(v))
		case uint64:
			body = binary.BigEndian.AppendUint64(body, v)
		case string:
			body = binary.BigEndian.AppendUint32(body, uint32(len(v)))
			body = append(body, v...)
		case []byte:
			body = append(body, v...)
		default:
			panic(fmt.Sprintf("frame: field of type %T", f))
		}
	}
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// reply is one packet the server sent: its type and what follows it.
type reply struct {
	typ  byte
	body []byte
}

func (r reply) id() uint32 {
	if len(r.body) < 4 {
		return 0
	}
	return binary.BigEndian.Uint32(r.body)
}

// status decodes an SSH_FXP_STATUS reply: code and message.
func (r reply) status() (uint32, string, bool) {
	if r.typ != fxpStatus || len(r.body) < 12 {
		return 0, "", false
	}
	code := binary.BigEndian.Uint32(r.body[4:])
	n := binary.BigEndian.Uint32(r.body[8:])
	if uint64(len(r.body)-12) < uint64(n) {
		return code, "", true
	}
	return code, string(r.body[12 : 12+n]), true
}

func (r reply) String() string {
	if code, msg, ok := r.status(); ok {
		return fmt.Sprintf("STATUS id=%d code=%d %.120q", r.id(), code, msg)
	}
	return fmt.Sprintf("type %d id=%d (%d bytes)", r.typ, r.id(), len(r.body))
}

// rawSFTP is an sftp subsystem channel driven packet by packet.
type rawSFTP struct {
	t      *testing.T
	ch     ssh.Channel
	in     chan reply // closed when the server ends the channel
	done   chan struct{}
	once   sync.Once
	nextID uint32

	mu       sync.Mutex
	messages []string // every status message received, for the host path check
}

// openRaw opens a session channel on conn, starts the sftp subsystem and
// exchanges INIT/VERSION.
func openRaw(t *testing.T, conn *ssh.Client) *rawSFTP {
	t.Helper()
	ch, reqs, err := conn.OpenChannel("session", nil)
	if err != nil {
		t.Fatalf("open channel: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	r := &rawSFTP{t: t, ch: ch, in: make(chan reply, 16), done: make(chan struct{}), nextID: 1}
	t.Cleanup(r.close)
	ok, err := ch.SendRequest("subsystem", true, ssh.Marshal(struct{ Name string }{"sftp"}))
	if err != nil || !ok {
		t.Fatalf("sftp subsystem: ok=%v err=%v", ok, err)
	}
	go r.readLoop()
	r.send(frame(fxpInit, uint32(3)))
	if rep, ok := r.next(); !ok || rep.typ != fxpVersion {
		t.Fatalf("INIT: got %v (open=%v), want VERSION", rep, ok)
	}
	return r
}

func (r *rawSFTP) close() {
	r.once.Do(func() {
		close(r.done)
		r.ch.Close()
	})
}

func (r *rawSFTP) readLoop() {
	defer close(r.in)
	for {
		var hdr [4]byte
		if _, err := io.ReadFull(r.ch, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > maxReplyFrame {
			r.t.Errorf("server sent a frame of %d bytes", n)
			return
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r.ch, buf); err != nil {
			return
		}
		rep := reply{typ: buf[0], body: buf[1:]}
		if _, msg, ok := rep.status(); ok {
			r.mu.Lock()
			r.messages = append(r.messages, msg)
			r.mu.Unlock()
		}
		select {
		case r.in <- rep:
		case <-r.done:
			return
		}
	}
}

func (r *rawSFTP) id() uint32 {
	r.nextID++
	return r.nextID
}

// send writes raw bytes; a channel the server already closed is not an
// error here (the expectation that follows says whether it should be).
func (r *rawSFTP) send(b []byte) {
	_, _ = r.ch.Write(b)
}

// next returns the next reply, or false when the channel ended.
func (r *rawSFTP) next() (reply, bool) {
	r.t.Helper()
	select {
	case rep, ok := <-r.in:
		return rep, ok
	case <-time.After(replyTimeout):
		r.t.Fatalf("no reply and no close within %v", replyTimeout)
		return reply{}, false
	}
}

// expect waits for the reply to id and checks its type.
func (r *rawSFTP) expect(id uint32, typ byte) reply {
	r.t.Helper()
	rep, ok := r.next()
	if !ok {
		r.t.Fatalf("channel closed, want reply type %d to id %d", typ, id)
	}
	if rep.typ != typ || rep.id() != id {
		r.t.Fatalf("got %v, want type %d to id %d", rep, typ, id)
	}
	return rep
}

// expectStatus waits for a status reply to id with one of codes.
func (r *rawSFTP) expectStatus(id uint32, codes ...uint32) string {
	r.t.Helper()
	rep, ok := r.next()
	if !ok {
		r.t.Fatalf("channel closed, want a status with code in %v", codes)
	}
	code, msg, isStatus := rep.status()
	if !isStatus || rep.id() != id || !slices.Contains(codes, code) {
		r.t.Fatalf("got %v, want a status to id %d with code in %v", rep, id, codes)
	}
	return msg
}

// expectErrorOrClose accepts an error status to id with one of codes, or
// the end of the channel (what pkg/sftp does with a frame it cannot parse).
func (r *rawSFTP) expectErrorOrClose(id uint32, codes ...uint32) {
	r.t.Helper()
	rep, ok := r.next()
	if !ok {
		return
	}
	code, _, isStatus := rep.status()
	if !isStatus || rep.id() != id || !slices.Contains(codes, code) {
		r.t.Fatalf("got %v, want a status to id %d with code in %v, or the channel closed", rep, id, codes)
	}
}

// expectClosed waits for the server to end the channel, with no reply.
func (r *rawSFTP) expectClosed() {
	r.t.Helper()
	if rep, ok := r.next(); ok {
		r.t.Fatalf("got %v, want the channel closed", rep)
	}
}

// alive checks that the channel still answers a request.
func (r *rawSFTP) alive() {
	r.t.Helper()
	id := r.id()
	r.send(frame(fxpStat, id, "/"))
	r.expect(id, fxpAttrs)
}

// open opens name with pflags and returns the handle.
func (r *rawSFTP) open(name string, pflags uint32) string {
	r.t.Helper()
	id := r.id()
	r.send(frame(fxpOpen, id, name, pflags, uint32(0)))
	rep := r.expect(id, fxpHandle)
	if len(rep.body) < 8 {
		r.t.Fatalf("short HANDLE reply")
	}
	n := binary.BigEndian.Uint32(rep.body[4:])
	if uint64(len(rep.body)-8) < uint64(n) {
		r.t.Fatalf("HANDLE reply: handle length %d past the end", n)
	}
	return string(rep.body[8 : 8+n])
}

// createFails opens name for writing and expects a refusal: at OPEN, or
// at CLOSE where uploads go to a temporary name first (atomic uploads), and
// then nothing under name.
func (r *rawSFTP) createFails(name string) {
	r.t.Helper()
	id := r.id()
	r.send(frame(fxpOpen, id, name, uint32(flagWrite|flagCreat), uint32(0)))
	rep, ok := r.next()
	if !ok || rep.id() != id {
		r.t.Fatalf("open %.40q: %v (open=%v)", name, rep, ok)
	}
	if code, _, isStatus := rep.status(); isStatus {
		if code != fxFailure && code != fxNoSuchFile {
			r.t.Fatalf("open %.40q: %v", name, rep)
		}
		return
	}
	if rep.typ != fxpHandle || len(rep.body) < 8 {
		r.t.Fatalf("open %.40q: %v", name, rep)
	}
	h := rep.body[8:]
	id = r.id()
	r.send(frame(fxpClose, id, string(h)))
	r.expectStatus(id, fxFailure, fxNoSuchFile)
	id = r.id()
	r.send(frame(fxpStat, id, name))
	r.expectStatus(id, fxFailure, fxNoSuchFile)
}

func (r *rawSFTP) closeHandle(h string) {
	r.t.Helper()
	id := r.id()
	r.send(frame(fxpClose, id, h))
	r.expectStatus(id, fxOK)
}

// badCase is one malformed exchange; keep says whether the channel must
// survive it (checked with a STAT afterwards).
type badCase struct {
	name string
	keep bool
	run  func(t *testing.T, r *rawSFTP, backend string)
}

var badCases = []badCase{
	{"frame longer than the data sent", false, func(t *testing.T, r *rawSFTP, _ string) {
		r.send(append(binary.BigEndian.AppendUint32(nil, 100), fxpStat, 0, 0, 0, 9))
		if err := r.ch.CloseWrite(); err != nil {
			t.Fatalf("close write: %v", err)
		}
		r.expectClosed()
	}},
	{"frame longer than its packet", true, func(t *testing.T, r *rawSFTP, _ string) {
		id := r.id()
		r.send(frame(fxpStat, id, "/", bytes.Repeat([]byte{0xff}, 64)))
		r.expect(id, fxpAttrs)
	}},
	{"1 GiB length", false, func(t *testing.T, r *rawSFTP, _ string) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		r.send(append(binary.BigEndian.AppendUint32(nil, 1<<30), fxpWrite, 0, 0, 0, 9))
		r.expectClosed()
		runtime.ReadMemStats(&after)
		// The daemon runs in this process: a buffer for the announced
		// length would show here.
		if grew := after.TotalAlloc - before.TotalAlloc; grew > 256<<20 {
			t.Fatalf("%d MiB allocated after a 1 GiB length was announced", grew>>20)
		}
	}},
	{"length 0xffffffff", false, func(t *testing.T, r *rawSFTP, _ string) {
		r.send([]byte{0xff, 0xff, 0xff, 0xff, fxpOpen})
		r.expectClosed()
	}},
	{"zero length", false, func(t *testing.T, r *rawSFTP, _ string) {
		r.send([]byte{0, 0, 0, 0})
		r.expectClosed()
	}},
	{"type byte only", false, func(t *testing.T, r *rawSFTP, _ string) {
		r.send(frame(fxpOpen))
		r.expectErrorOrClose(0, fxBadMessage)
	}},
	// 200 is SSH_FXP_EXTENDED; these are no request at all, or a reply
	// type sent by a client. pkg/sftp ends the channel on them.
	{"unknown type 0", false, unknownType(0)},
	{"unknown type 21", false, unknownType(21)},
	{"unknown type 99", false, unknownType(99)},
	{"reply type STATUS", false, unknownType(fxpStatus)},
	{"reply type DATA", false, unknownType(fxpData)},
	{"unknown type 255", false, unknownType(255)},
	{"extended without a name", false, func(t *testing.T, r *rawSFTP, _ string) {
		id := r.id()
		r.send(frame(fxpExtended, id))
		r.expectErrorOrClose(id, fxBadMessage)
	}},
	{"unknown extended requests", true, func(t *testing.T, r *rawSFTP, _ string) {
		for _, name := range []string{"nope@example.com", "", "fsync@openssh.com", "copy-data", strings.Repeat("x", 60000)} {
			id := r.id()
			r.send(frame(fxpExtended, id, name, "/a", "/b"))
			r.expectStatus(id, fxUnsupported)
		}
	}},
	{"hardlink extension", true, func(t *testing.T, r *rawSFTP, _ string) {
		h := r.open("/target", flagWrite|flagCreat)
		r.closeHandle(h)
		id := r.id()
		r.send(frame(fxpExtended, id, "hardlink@openssh.com", "/target", "/link"))
		r.expectStatus(id, fxDenied)
		id = r.id()
		r.send(frame(fxpSymlink, id, "/etc/passwd", "/link"))
		r.expectStatus(id, fxDenied)
		id = r.id()
		r.send(frame(fxpStat, id, "/link"))
		r.expectStatus(id, fxNoSuchFile)
	}},
	{"statvfs with its path cut off", false, func(t *testing.T, r *rawSFTP, _ string) {
		id := r.id()
		r.send(frame(fxpExtended, id, "statvfs@openssh.com", uint32(50), []byte("/ab")))
		r.expectErrorOrClose(id, fxBadMessage)
	}},
	{"open with its path cut off", false, func(t *testing.T, r *rawSFTP, _ string) {
		id := r.id()
		r.send(frame(fxpOpen, id, uint32(1000), []byte("/short")))
		r.expectErrorOrClose(id, fxBadMessage)
	}},
	{"open without pflags", false, func(t *testing.T, r *rawSFTP, _ string) {
		id := r.id()
		r.send(frame(fxpOpen, id, "/x"))
		r.expectErrorOrClose(id, fxBadMessage)
	}},
	{"write with its data cut off", false, func(t *testing.T, r *rawSFTP, _ string) {
		h := r.open("/cut", flagWrite|flagCreat)
		id := r.id()
		r.send(frame(fxpWrite, id, h, uint64(0), uint32(4096), []byte("only this")))
		r.expectErrorOrClose(id, fxBadMessage)
	}},
	{"setstat with an absurd extended count", true, func(t *testing.T, r *rawSFTP, _ string) {
		h := r.open("/attrs", flagWrite|flagCreat)
		id := r.id()
		r.send(frame(fxpFsetstat, id, h, uint32(attrExtended), uint32(0xffffffff), "k", "v"))
		// pkg/sftp decodes setstat attributes only for the flags it
		// handles; an error status or OK is fine, a huge allocation or a
		// panic is not.
		r.expectStatus(id, fxOK, fxFailure, fxBadMessage)
		r.closeHandle(h)
	}},
	{"1 MiB path", false, func(t *testing.T, r *rawSFTP, _ string) {
		id := r.id()
		r.send(frame(fxpOpen, id, "/"+strings.Repeat("a", 1<<20), uint32(flagWrite|flagCreat), uint32(0)))
		r.expectErrorOrClose(id, fxBadMessage, fxFailure)
	}},
	{"200 KiB path", true, func(t *testing.T, r *rawSFTP, _ string) {
		long := "/" + strings.Repeat("a", 200<<10)
		id := r.id()
		r.send(frame(fxpStat, id, long))
		r.expectStatus(id, fxNoSuchFile, fxFailure)
		r.createFails(long)
		id = r.id()
		r.send(frame(fxpMkdir, id, strings.Repeat("/d", 100<<10), uint32(0)))
		r.expectStatus(id, fxNoSuchFile, fxFailure)
	}},
	{"NUL bytes in paths", true, func(t *testing.T, r *rawSFTP, _ string) {
		for _, name := range []string{"/nul\x00.txt", "\x00", "/../../../../etc/passwd\x00.txt", "/a/\x00/../b"} {
			r.createFails(name)
			id := r.id()
			r.send(frame(fxpMkdir, id, name, uint32(0)))
			r.expectStatus(id, fxFailure, fxNoSuchFile)
		}
		h := r.open("/plain", flagWrite|flagCreat)
		r.closeHandle(h)
		id := r.id()
		r.send(frame(fxpRename, id, "/plain", "/re\x00named"))
		r.expectStatus(id, fxFailure, fxNoSuchFile)
	}},
	{"paths that climb out", true, func(t *testing.T, r *rawSFTP, _ string) {
		// Confined, not refused: "/.." is "/" (the file is checked on disk
		// at the end of the test).
		h := r.open("/../../../../climbed.txt", flagWrite|flagCreat)
		r.closeHandle(h)
		h = r.open("../../../climbed2.txt", flagWrite|flagCreat)
		r.closeHandle(h)
		for _, name := range []string{"/climbed.txt", "/climbed2.txt"} {
			id := r.id()
			r.send(frame(fxpStat, id, name))
			r.expect(id, fxpAttrs)
		}
	}},
	{"read on an unknown handle", true, func(t *testing.T, r *rawSFTP, _ string) {
		for _, h := range []string{"no-such-handle", "", "1", "99999", strings.Repeat("h", 1000)} {
			id := r.id()
			r.send(frame(fxpRead, id, h, uint64(0), uint32(1024)))
			r.expectStatus(id, fxFailure, fxNoSuchFile)
		}
	}},
	{"close twice", true, func(t *testing.T, r *rawSFTP, _ string) {
		h := r.open("/twice", flagWrite|flagCreat)
		r.closeHandle(h)
		id := r.id()
		r.send(frame(fxpClose, id, h))
		r.expectStatus(id, fxFailure, fxNoSuchFile)
		id = r.id()
		r.send(frame(fxpWrite, id, h, uint64(0), "late"))
		r.expectStatus(id, fxFailure, fxNoSuchFile)
	}},
	// pkg/sftp dispatches a request by the kind of handle, not by the
	// packet: READDIR on a file handle gets an empty DATA, WRITE on a
	// directory handle a listing, READ on a write-only handle a write of
	// zeros (see the report). None may read what the handle was not opened
	// for, or write through a handle opened for reading.
	{"requests on the wrong kind of handle", true, func(t *testing.T, r *rawSFTP, _ string) {
		const secret = "contents only a reader may see"
		for _, name := range []string{"/write-only", "/read-only"} {
			h := r.open(name, flagWrite|flagCreat|flagTrunc)
			id := r.id()
			r.send(frame(fxpWrite, id, h, uint64(0), secret))
			r.expectStatus(id, fxOK)
			r.closeHandle(h)
		}

		// Write-only handle: READ and READDIR must not return the data.
		h := r.open("/write-only", flagWrite)
		for _, pkt := range [][]byte{
			frame(fxpRead, uint32(0), h, uint64(0), uint32(1024)),
			frame(fxpReaddir, uint32(0), h),
		} {
			id := r.id()
			binary.BigEndian.PutUint32(pkt[5:], id)
			r.send(pkt)
			rep, ok := r.next()
			if !ok || rep.id() != id {
				t.Fatalf("got %v (open=%v)", rep, ok)
			}
			if rep.typ == fxpData || rep.typ == fxpName || bytes.Contains(rep.body, []byte(secret)) {
				t.Fatalf("a write-only handle answered %v", rep)
			}
		}
		r.closeHandle(h)

		// Read-only handle: WRITE must not change the file, READDIR must
		// not list anything.
		h = r.open("/read-only", flagRead)
		id := r.id()
		r.send(frame(fxpWrite, id, h, uint64(0), "overwritten"))
		if rep, ok := r.next(); !ok || rep.id() != id {
			t.Fatalf("write on a read-only handle: %v (open=%v)", rep, ok)
		}
		id = r.id()
		r.send(frame(fxpReaddir, id, h))
		if rep, ok := r.next(); !ok || rep.id() != id || rep.typ == fxpName {
			t.Fatalf("readdir on a file handle: %v (open=%v)", rep, ok)
		}
		id = r.id()
		r.send(frame(fxpRead, id, h, uint64(0), uint32(1024)))
		if rep := r.expect(id, fxpData); !bytes.HasSuffix(rep.body, []byte(secret)) {
			t.Fatalf("the file changed through a read-only handle: %q", rep.body)
		}
		r.closeHandle(h)

		// Directory handle: WRITE creates nothing.
		d := r.openDir("/")
		id = r.id()
		r.send(frame(fxpWrite, id, d, uint64(0), "data"))
		rep, ok := r.next()
		if !ok || rep.id() != id {
			t.Fatalf("write on a directory handle: %v (open=%v)", rep, ok)
		}
		if code, _, isStatus := rep.status(); isStatus && code == fxOK {
			t.Fatalf("write on a directory handle succeeded")
		}
		r.closeHandle(d)
	}},
	{"write and read at offsets near 2^63", true, func(t *testing.T, r *rawSFTP, backend string) {
		h := r.open("/far", flagRead|flagWrite|flagCreat|flagTrunc)
		for _, off := range []uint64{math.MaxInt64 - 4, math.MaxInt64, 1 << 63, math.MaxUint64 - 3} {
			id := r.id()
			r.send(frame(fxpWrite, id, h, off, "0123456789abcdef"))
			r.expectStatus(id, fxFailure)
			id = r.id()
			r.send(frame(fxpRead, id, h, off, uint32(16)))
			r.expectStatus(id, fxEOF, fxFailure)
		}
		if backend == "memory" {
			// A hole the memory backend would have to allocate.
			id := r.id()
			r.send(frame(fxpWrite, id, h, uint64(1)<<40, "x"))
			r.expectStatus(id, fxFailure)
		}
		r.closeHandle(h)
		h = r.open("/far-readonly", flagWrite|flagCreat)
		r.closeHandle(h)
	}},
	{"truncate to absurd sizes", true, func(t *testing.T, r *rawSFTP, backend string) {
		h := r.open("/grown", flagWrite|flagCreat)
		sizes := []uint64{1 << 63, math.MaxUint64}
		if backend == "memory" {
			sizes = append(sizes, 1<<62, 1<<40)
		}
		for _, size := range sizes {
			id := r.id()
			r.send(frame(fxpFsetstat, id, h, uint32(attrSize), size))
			r.expectStatus(id, fxFailure)
		}
		r.closeHandle(h)
	}},
	{"read past the end", true, func(t *testing.T, r *rawSFTP, _ string) {
		h := r.open("/short", flagWrite|flagCreat|flagTrunc)
		id := r.id()
		r.send(frame(fxpWrite, id, h, uint64(0), "12345"))
		r.expectStatus(id, fxOK)
		r.closeHandle(h)
		h = r.open("/short", flagRead)
		for _, off := range []uint64{5, 6, 1 << 20} {
			id = r.id()
			r.send(frame(fxpRead, id, h, off, uint32(32768)))
			r.expectStatus(id, fxEOF)
		}
		r.closeHandle(h)
	}},
	{"read of 4 GiB", true, func(t *testing.T, r *rawSFTP, _ string) {
		h := r.open("/short2", flagWrite|flagCreat)
		r.closeHandle(h)
		h = r.open("/short2", flagRead)
		id := r.id()
		r.send(frame(fxpRead, id, h, uint64(0), uint32(math.MaxUint32)))
		r.expectStatus(id, fxEOF)
		r.closeHandle(h)
	}},
}

func unknownType(typ byte) func(t *testing.T, r *rawSFTP, _ string) {
	return func(t *testing.T, r *rawSFTP, _ string) {
		id := r.id()
		r.send(frame(typ, id, "/x"))
		r.expectErrorOrClose(id, fxUnsupported)
	}
}

func (r *rawSFTP) openDir(name string) string {
	r.t.Helper()
	id := r.id()
	r.send(frame(fxpOpendir, id, name))
	rep := r.expect(id, fxpHandle)
	n := binary.BigEndian.Uint32(rep.body[4:])
	return string(rep.body[8 : 8+n])
}

// TestMalformedSFTP runs every bad case on its own channel of one
// connection, with another user's session checked after each.
func TestMalformedSFTP(t *testing.T) {
	for _, backend := range []string{"local", "memory"} {
		t.Run(backend, func(t *testing.T) {
			before := runtime.NumGoroutine()
			d := runMalformedSFTP(t, backend)
			daemontest.CheckGoroutines(t, before)
			if strings.Contains(strings.ToLower(d.Logs()), "panic") {
				t.Errorf("the daemon logged a panic:\n%s", d.Logs())
			}
		})
	}
}

func runMalformedSFTP(t *testing.T, backend string) *daemontest.Daemon {
	alice, ca := newUser(t, "alice")
	bob, cb := newUser(t, "bob")
	d := start(t, backend, ca, cb)

	aliceConn, err := dial(t, d, alice.name, ssh.PublicKeys(alice.signer))
	if err != nil {
		t.Fatalf("dial alice: %v", err)
	}
	defer aliceConn.Close()
	bobConn, err := dial(t, d, bob.name, ssh.PublicKeys(bob.signer))
	if err != nil {
		t.Fatalf("dial bob: %v", err)
	}
	defer bobConn.Close()
	bobSFTP, err := sftp.NewClient(bobConn)
	if err != nil {
		t.Fatalf("bob sftp: %v", err)
	}
	defer bobSFTP.Close()

	var messages []string
	for i, c := range badCases {
		t.Run(c.name, func(t *testing.T) {
			r := openRaw(t, aliceConn)
			c.run(t, r, backend)
			if c.keep {
				r.alive()
			}
			r.close()
			r.mu.Lock()
			messages = append(messages, r.messages...)
			r.mu.Unlock()

			// Another user's session is unaffected.
			data := []byte(fmt.Sprintf("bob's file after case %d", i))
			name := fmt.Sprintf("/bob-%d", i)
			put(t, bobSFTP, name, data)
			if got := get(t, bobSFTP, name); !bytes.Equal(got, data) {
				t.Fatalf("bob read back %q, want %q", got, data)
			}
		})
	}

	// alice's connection itself survived every case.
	alive := openRaw(t, aliceConn)
	alive.alive()
	alive.close()

	if backend == "local" {
		daemontest.CheckConfined(t, d.Config.Storage.Root, "alice", "bob")
		for _, m := range messages {
			if strings.Contains(m, d.Config.Storage.Root) {
				t.Errorf("a status message names the storage root: %.200q", m)
			}
		}
	}

	bobSFTP.Close()
	bobConn.Close()
	aliceConn.Close()
	if err := d.Stop(); err != nil {
		t.Errorf("stop: %v", err)
	}
	return d
}
