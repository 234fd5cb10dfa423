package session

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// CheckLimits bound the password hash verifications that run at once.
// Each one allocates what its hash's parameters say (64 MiB for an argon2id
// hash made with RFC 9106's second option), and every failed login from the
// internet costs one: without a bound, a few hundred wrong passwords sent
// together hold gigabytes.
type CheckLimits struct {
	// Concurrent is how many verifications run at once.
	Concurrent int
	// Memory is how many bytes of hashing may be held at once, from each
	// hash's own parameters. A hash heavier than all of it runs alone.
	Memory int64
	// Wait is how long an attempt may wait for room; past it the attempt
	// fails as a failed login, without hashing.
	Wait time.Duration
}

// Default bounds, where the config leaves them at 0.
const (
	// DefaultCheckWait is long enough for a queue of a few checks ahead
	// to finish, and short enough that a flood fails fast.
	DefaultCheckWait = 2 * time.Second
	// legacyHashMemory is what one hash with wharf's former defaults
	// (m=64 MiB) holds; operators still have such hashes.
	legacyHashMemory = 64 << 20
)

// DefaultCheckLimits derives the bounds from the machine: one verification
// per core but one (hashing is CPU-bound, so more at once only holds more
// memory for the same throughput, and the core kept free serves the key
// logins and transfers of everybody else during a flood), and room for that
// many 64 MiB hashes, but never more than an eighth of the machine's memory.
func DefaultCheckLimits(cores int, memTotal int64) CheckLimits {
	n := max(cores-1, 1)
	mem := int64(n) * legacyHashMemory
	if memTotal > 0 {
		mem = max(min(mem, memTotal/8), 1<<20)
	}
	return CheckLimits{Concurrent: n, Memory: mem, Wait: DefaultCheckWait}
}

func (c CheckLimits) String() string {
	return fmt.Sprintf("concurrent=%d memory=%dMiB wait=%s", c.Concurrent, c.Memory>>20, c.Wait)
}

// errChecksBusy is why an attempt failed when no room came up in time.
var errChecksBusy = errors.New("password check not started: too many checks in progress")

// checkSlots hands out room for one verification: a slot, and its hash's
// memory. Both semaphores serve waiters in order, so a heavy hash is not
// starved by light ones.
type checkSlots struct {
	slots  *semaphore.Weighted
	memory *semaphore.Weighted
	max    int64 // Memory
	wait   time.Duration
	// share is how many attempts one address may have in flight before
	// the defender scores its next ones up front: half the slots, so that
	// one address never holds them all.
	share int

	running, waiting atomic.Int64 // for the operator's metrics
}

func newCheckSlots(c CheckLimits) *checkSlots {
	if c.Concurrent < 1 || c.Memory < 1 || c.Wait <= 0 {
		d := DefaultCheckLimits(1, 0)
		c.Concurrent = cmpOr(c.Concurrent, d.Concurrent)
		c.Memory = cmpOr(c.Memory, d.Memory)
		c.Wait = cmpOr(c.Wait, d.Wait)
	}
	return &checkSlots{
		slots:  semaphore.NewWeighted(int64(c.Concurrent)),
		memory: semaphore.NewWeighted(c.Memory),
		max:    c.Memory,
		wait:   c.Wait,
		share:  max(c.Concurrent/2, 1),
	}
}

// cmpOr is cmp.Or for numbers that are unset when not positive.
func cmpOr[T int | int64 | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

// acquire waits up to the configured wait for room to verify a hash that
// allocates cost bytes. release must be called once the hash has run.
func (c *checkSlots) acquire(cost int64) (release func(), err error) {
	cost = min(max(cost, 1), c.max) // a hash heavier than the budget runs alone
	ctx, cancel := context.WithTimeout(context.Background(), c.wait)
	defer cancel()
	c.waiting.Add(1)
	defer c.waiting.Add(-1)
	if err := c.slots.Acquire(ctx, 1); err != nil {
		return nil, errChecksBusy
	}
	if err := c.memory.Acquire(ctx, cost); err != nil {
		c.slots.Release(1)
		return nil, errChecksBusy
	}
	c.running.Add(1)
	var once sync.Once
	return func() {
		once.Do(func() {
			c.running.Add(-1)
			c.memory.Release(cost)
			c.slots.Release(1)
		})
	}, nil
}
