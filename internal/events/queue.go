package events

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// Queue is where deliveries wait until they are made. The bus has one
// worker per hook: Next and Done for a hook are called by that worker
// alone, Push by any number of sessions at once.
//
// The default queue is a bbolt file in state_dir (OpenLocal); a fleet
// keeps its deliveries in the bucket instead (package fleet), so that the
// deliveries of a daemon that dies are made by the others.
type Queue interface {
	// Push stores body, the event ev as JSON, once for each named hook.
	// When it returns nil the deliveries survive a crash of the process.
	Push(hooks []string, ev *Event, body []byte) error
	// Next returns the delivery the hook's worker should attempt now: the
	// oldest it holds, until Done removes it. ok is false when there is
	// none.
	Next(ctx context.Context, hook string) (d Delivery, ok bool, err error)
	// Done removes a delivery that was made, or that can never be.
	Done(ctx context.Context, hook string, d Delivery) error
	// Pending counts, per hook, the deliveries the queue held when it was
	// opened: what a previous run left. Names of hooks no longer
	// configured are included.
	Pending() (map[string]int, error)
	// Poll is how often an idle worker asks Next again without being
	// woken by a Push of its own process: 0 for a queue only this process
	// writes.
	Poll() time.Duration
	// Close releases the queue; Push, Next and Done are not called after.
	Close() error
}

// Delivery is one queued event for one hook.
type Delivery struct {
	Body []byte // the event's JSON, exactly as queued (what a signature covers)
	// Adopted is set the first time Next returns a delivery the queue took
	// over from another process (its owner died): the bus counts it as
	// queued from then on.
	Adopted bool
	// Ref is the queue's own handle on the delivery.
	Ref any
}

// bucketPrefix names each hook's bucket ("hook:" + name). Within it, keys
// are 8-byte big-endian sequence numbers from the bucket's own sequence,
// so key order is the order events were queued, and values are the event
// JSON exactly as delivered (the bytes the webhook signature covers).
const bucketPrefix = "hook:"

// lockTimeout is how long Open waits for another process to release the
// queue file before saying so; a process that died released it already.
const lockTimeout = 2 * time.Second

// maxGroup bounds how many pushes one transaction commits.
const maxGroup = 1024

// local is the durable delivery queue on disk: one bbolt file, fsync'd on
// every commit, so whatever Push returned for survives a crash or SIGKILL.
// Pushes are committed in groups: one committer goroutine takes every
// push waiting when it starts a transaction, so N sessions closing
// uploads at once share one fsync instead of queueing for N of them, and
// a push that arrives alone is committed at once, never held back to wait
// for company.
type local struct {
	db      *bolt.DB
	pending map[string]int // counted at open

	pushes  chan *push // to the committer; closed by Close
	done    chan struct{}
	once    sync.Once
	commits atomic.Uint64 // transactions the committer made, for tests
}

type push struct {
	hooks []string
	body  []byte
	err   chan error // buffered 1
}

// OpenLocal opens (creating it if need be) the bbolt queue file. Only one
// process may have it open at a time.
func OpenLocal(file string) (Queue, error) {
	q, err := openLocal(file)
	if err != nil {
		return nil, err
	}
	go q.commit()
	return q, nil
}

// openLocal opens the file; the caller starts the committer.
func openLocal(file string) (*local, error) {
	db, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("event queue %s: in use by another process", file)
	}
	if err != nil {
		return nil, fmt.Errorf("event queue %s: %w", file, err)
	}
	q := &local{db: db, pushes: make(chan *push, maxGroup), done: make(chan struct{})}
	if q.pending, err = q.counts(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return q, nil
}

func (q *local) Close() error {
	q.once.Do(func() { close(q.pushes) })
	<-q.done
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("event queue: %w", err)
	}
	return nil
}

func (q *local) Poll() time.Duration { return 0 }

func (q *local) Pending() (map[string]int, error) { return q.pending, nil }

// Push hands body to the committer and waits for its transaction.
func (q *local) Push(hooks []string, _ *Event, body []byte) error {
	p := &push{hooks: hooks, body: body, err: make(chan error, 1)}
	q.pushes <- p
	return <-p.err
}

// commit is the committer: it runs until Close closes pushes.
func (q *local) commit() {
	defer close(q.done)
	group := make([]*push, 0, maxGroup)
	for p := range q.pushes {
		group = append(group[:0], p)
	more:
		for len(group) < maxGroup {
			select {
			case p, ok := <-q.pushes:
				if !ok {
					break more
				}
				group = append(group, p)
			default:
				break more
			}
		}
		err := q.db.Update(func(tx *bolt.Tx) error {
			for _, p := range group {
				for _, name := range p.hooks {
					bk, err := tx.CreateBucketIfNotExists([]byte(bucketPrefix + name))
					if err != nil {
						return err
					}
					seq, err := bk.NextSequence()
					if err != nil {
						return err
					}
					if err := bk.Put(seqKey(seq), p.body); err != nil {
						return err
					}
				}
			}
			return nil
		})
		q.commits.Add(1)
		if err != nil {
			err = fmt.Errorf("event queue: %w", err)
		}
		for _, p := range group {
			p.err <- err
		}
	}
}

// Next returns the first entry of a hook's queue. The returned slices are
// copies: bbolt's are valid only inside the transaction.
func (q *local) Next(_ context.Context, hook string) (d Delivery, ok bool, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketPrefix + hook))
		if bk == nil {
			return nil
		}
		k, v := bk.Cursor().First()
		if k == nil {
			return nil
		}
		d = Delivery{Body: append([]byte(nil), v...), Ref: append([]byte(nil), k...)}
		ok = true
		return nil
	})
	if err != nil {
		return Delivery{}, false, fmt.Errorf("event queue: %w", err)
	}
	return d, ok, nil
}

// Done deletes one entry once it is delivered.
func (q *local) Done(_ context.Context, hook string, d Delivery) error {
	key, _ := d.Ref.([]byte)
	err := q.db.Update(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketPrefix + hook))
		if bk == nil {
			return nil
		}
		return bk.Delete(key)
	})
	if err != nil {
		return fmt.Errorf("event queue: %w", err)
	}
	return nil
}

// counts returns the number of queued entries per hook name, including
// hooks no longer configured.
func (q *local) counts() (map[string]int, error) {
	out := map[string]int{}
	err := q.db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, bk *bolt.Bucket) error {
			hook, ok := strings.CutPrefix(string(name), bucketPrefix)
			if !ok {
				return nil
			}
			out[hook] = bk.Stats().KeyN
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("event queue: %w", err)
	}
	return out, nil
}

func seqKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}
