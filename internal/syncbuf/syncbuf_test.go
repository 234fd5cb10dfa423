package syncbuf

import (
	"fmt"
	"slices"
	"sync"
	"testing"
)

func TestBuffer(t *testing.T) {
	var b Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "{\"msg\":\"w\",\"n\":%d}\n", i) })
	}
	wg.Wait()
	if got := len(b.Lines(`"msg":"w"`)); got != 8 {
		t.Errorf("%d lines from 8 writers", got)
	}
	if got := b.Lines(`"n":3`); len(got) != 1 || got[0] != `{"msg":"w","n":3}` {
		t.Errorf("Lines(n=3) = %q", got)
	}
	if got := b.Take(); len(got) == 0 || b.String() != "" || b.Lines() != nil {
		t.Errorf("Take left %q", b.String())
	}
	fmt.Fprint(&b, "a\nb")
	if got := b.Lines(); !slices.Equal(got, []string{"a", "b"}) {
		t.Errorf("Lines() = %q", got)
	}
}
