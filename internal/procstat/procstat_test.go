package procstat

import "testing"

func TestParseMem(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		rss, hwm int64
		wantErr  bool
	}{
		{name: "both", data: "Name:\twharf\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n", rss: 10 << 20, hwm: 20 << 20},
		{name: "kernel thread", data: "Name:\tkthreadd\nThreads:\t1\n", wantErr: true},
		{name: "garbage", data: "VmHWM:\tlots\nVmRSS:\t1 kB\n", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rss, hwm, err := ParseMem([]byte(tt.data))
			if (err != nil) != tt.wantErr {
				t.Fatalf("error %v, want error: %v", err, tt.wantErr)
			}
			if rss != tt.rss || hwm != tt.hwm {
				t.Errorf("rss %d, hwm %d; want %d, %d", rss, hwm, tt.rss, tt.hwm)
			}
		})
	}
}

func TestMemOfSelf(t *testing.T) {
	rss, hwm, err := Mem(0)
	if err != nil {
		t.Fatal(err)
	}
	if rss <= 0 || hwm < rss {
		t.Errorf("rss %d, hwm %d", rss, hwm)
	}
}
