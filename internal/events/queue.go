package events

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// bucketPrefix names each hook's bucket ("hook:" + name). Within it, keys
// are 8-byte big-endian sequence numbers from the bucket's own sequence,
// so key order is the order events were queued, and values are the event
// JSON exactly as delivered (the bytes the webhook signature covers).
const bucketPrefix = "hook:"

// lockTimeout is how long Open waits for another process to release the
// queue file before saying so; a process that died released it already.
const lockTimeout = 2 * time.Second

// queue is the durable delivery queue: one bbolt file, fsync'd on every
// commit, so whatever push returned for survives a crash or SIGKILL.
type queue struct {
	db *bolt.DB
}

func openQueue(file string) (*queue, error) {
	db, err := bolt.Open(file, 0o600, &bolt.Options{Timeout: lockTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("event queue %s: in use by another process", file)
	}
	if err != nil {
		return nil, fmt.Errorf("event queue %s: %w", file, err)
	}
	return &queue{db: db}, nil
}

func (q *queue) close() error {
	if err := q.db.Close(); err != nil {
		return fmt.Errorf("event queue: %w", err)
	}
	return nil
}

// push appends body to each named hook's queue in one transaction.
func (q *queue) push(hooks []string, body []byte) error {
	err := q.db.Update(func(tx *bolt.Tx) error {
		for _, name := range hooks {
			bk, err := tx.CreateBucketIfNotExists([]byte(bucketPrefix + name))
			if err != nil {
				return err
			}
			seq, err := bk.NextSequence()
			if err != nil {
				return err
			}
			if err := bk.Put(seqKey(seq), body); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("event queue: %w", err)
	}
	return nil
}

// oldest returns the first entry of a hook's queue; ok is false when the
// queue is empty. The returned slices are copies: bbolt's are valid only
// inside the transaction.
func (q *queue) oldest(hook string) (key, body []byte, ok bool, err error) {
	err = q.db.View(func(tx *bolt.Tx) error {
		bk := tx.Bucket([]byte(bucketPrefix + hook))
		if bk == nil {
			return nil
		}
		k, v := bk.Cursor().First()
		if k == nil {
			return nil
		}
		key = append([]byte(nil), k...)
		body = append([]byte(nil), v...)
		ok = true
		return nil
	})
	if err != nil {
		return nil, nil, false, fmt.Errorf("event queue: %w", err)
	}
	return key, body, ok, nil
}

// remove deletes one entry once it is delivered.
func (q *queue) remove(hook string, key []byte) error {
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
func (q *queue) counts() (map[string]int, error) {
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
