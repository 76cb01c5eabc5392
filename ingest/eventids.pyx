# cython: language_level=3, boundscheck=False, wraparound=False
"""A set of event ids that remembers the order they came in: the collector forgets the
oldest first and takes back the newest (a body refused half way), and tells the ids a
body added, all without a Python object per id.

A Python set of bytes made an object per event, hashed it with SipHash and resized
itself as it grew: 6-7% of the collector's CPU. Here an id is copied into a ring of
fixed records and indexed by an open-addressing table (linear probing; removal shifts
the probe run back, so no tombstones pile up): 4%, most of it the one cache miss of a
lookup among 100,000 ids. The caller starts that fetch early (`prefetch`) and does other
work before it adds the id, and `keep_newest` fetches a few ids ahead: 2.7%.

Ids a body added are handed over `packed`: each as its size (4 bytes, native order)
then its bytes, one bytes object for them all. It lives in memory only.
"""

import os

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.stdint cimport UINT32_MAX, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memcmp, memcpy

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    /* MurmurHash3's 64-bit block step and finalizer over one lane, seeded: ids are
       random bytes as Ray makes them, but a sender may choose them, so the seed is the
       process's own. */
    static inline uint64_t raylake_rotl(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
    static inline uint64_t raylake_hash_id(const uint8_t* data, Py_ssize_t size, uint64_t seed) {
        const uint64_t c1 = 0x87c37b91114253d5ULL, c2 = 0x4cf5ad432745937fULL;
        uint64_t h = seed ^ (uint64_t)size, k;
        Py_ssize_t i = 0;
        for (; i + 8 <= size; i += 8) {
            memcpy(&k, data + i, 8);
            k = raylake_rotl(k * c1, 31) * c2;
            h = raylake_rotl(h ^ k, 27) * 5 + 0x52dce729;
        }
        k = 0;
        for (Py_ssize_t j = size - 1; j >= i; j--) k = (k << 8) | data[j];
        h ^= raylake_rotl(k * c1, 31) * c2;
        h ^= h >> 33;
        h *= 0xff51afd7ed558ccdULL;
        h ^= h >> 33;
        h *= 0xc4ceb9fe1a85ec53ULL;
        h ^= h >> 33;
        return h;
    }
    """
    uint64_t raylake_hash_id(const uint8_t* data, Py_ssize_t size, uint64_t seed) nogil
    void __builtin_prefetch(const void* address) nogil


cdef uint64_t SEED = int.from_bytes(os.urandom(8), "little")
cdef Py_ssize_t FIRST_CAPACITY = 1024
cdef uint64_t EMPTY = 0
cdef Py_ssize_t REMOVE_AHEAD = 8


cdef inline uint32_t hash_of(const uint8_t* data, Py_ssize_t size) noexcept nogil:
    """The low half is what the table keeps (and where an id's probe run starts)."""
    return <uint32_t>raylake_hash_id(data, size, SEED)


cdef inline const uint8_t* bytes_of(const Record* record) noexcept nogil:
    return record.data.heap if record.size > HELD_ID else record.data.held


cdef class EventIds:
    """A set of event ids (bytes), in the order they were added. `added` numbers them:
    `rollback(mark)` takes back those added since `added` was `mark`, `since(mark)`
    packs them; `keep_newest` forgets the oldest."""

    def __init__(self, ids=()):
        for event_id in ids:
            self.add(event_id)

    def __dealloc__(self):
        cdef Py_ssize_t n
        for n in range(self.first, self.added):
            self.free_id(n)
        free(self.records)
        free(self.slots)

    def __len__(self):
        return self.added - self.first

    def __contains__(self, bytes event_id):
        cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(event_id)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(event_id)
        if self.capacity == 0:
            return False
        return self.slots[self.find(data, size, hash_of(data, size))] != EMPTY

    def __iter__(self):
        """The ids, oldest first."""
        cdef Py_ssize_t n
        for n in range(self.first, self.added):
            yield self.id_bytes(n)

    def add(self, bytes event_id):
        """Add an id; True when it was not held before."""
        cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(event_id)
        cdef Py_ssize_t size = PyBytes_GET_SIZE(event_id)
        return self.add_id(data, size, hash_of(data, size)) == 1

    def add_packed(self, bytes packed):
        """Add the ids `since` packed (those held already stay where they are)."""
        cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(packed)
        cdef Py_ssize_t at = 0, end = PyBytes_GET_SIZE(packed)
        while at < end:
            size = next_packed(data, at, end)
            self.add_id(data + at + 4, size, hash_of(data + at + 4, size))
            at += 4 + size

    def since(self, Py_ssize_t mark):
        """The ids added since `added` was `mark`, oldest first, packed."""
        cdef Py_ssize_t n, total = 0
        cdef const Record* record
        cdef char* out
        if not self.first <= mark <= self.added:
            raise ValueError(f"mark {mark} is not within the ids held ({self.first}-{self.added})")
        for n in range(mark, self.added):
            total += 4 + self.records[n & (self.capacity - 1)].size
        packed = PyBytes_FromStringAndSize(NULL, total)
        out = PyBytes_AS_STRING(packed)
        for n in range(mark, self.added):
            record = &self.records[n & (self.capacity - 1)]
            memcpy(out, &record.size, 4)
            memcpy(out + 4, bytes_of(record), record.size)
            out += 4 + record.size
        return packed

    def rollback(self, Py_ssize_t mark):
        """Take back the ids added since `added` was `mark`, newest first."""
        if mark > self.added:
            raise ValueError(f"mark {mark} is past the ids added ({self.added})")
        while self.added > mark and self.added > self.first:
            self.remove(self.added - 1)
            self.added -= 1

    def keep_newest(self, Py_ssize_t count):
        """Forget the oldest ids, down to `count`."""
        cdef Py_ssize_t mask = 2 * self.capacity - 1, ahead
        cdef uint32_t hash
        while self.added - self.first > count:
            # The slot of an id a few ahead is fetched while this one is removed.
            ahead = self.first + REMOVE_AHEAD
            if self.added - ahead > count:
                hash = self.records[ahead & (self.capacity - 1)].hash
                __builtin_prefetch(&self.slots[hash & mask])
            self.remove(self.first)
            self.first += 1

    # -- the ring and the table -----------------------------------------------------

    cdef uint32_t prefetch(self, const uint8_t* data, Py_ssize_t size) noexcept:
        """An id's hash, for `add_id`, its table slot fetched into the CPU's cache
        meanwhile: a lookup among 100,000 ids waits on memory, and the caller has work
        to do before it adds the id."""
        cdef uint32_t hash = hash_of(data, size)
        if self.slots != NULL:
            __builtin_prefetch(&self.slots[hash & (2 * self.capacity - 1)])
        return hash

    cdef int add_id(self, const uint8_t* data, Py_ssize_t size, uint32_t hash) except -1:
        """Add an id whose `hash_of` is `hash`: 1 when it was not held before, 0 when
        it was (and stays put)."""
        cdef Py_ssize_t slot, index
        cdef Record* record
        if size > UINT32_MAX:
            raise ValueError(f"an event id of {size} bytes")
        if self.added - self.first == self.capacity:
            self.grow()
        slot = self.find(data, size, hash)
        if self.slots[slot] != EMPTY:
            return 0
        index = self.added & (self.capacity - 1)
        record = &self.records[index]
        if size > HELD_ID:
            record.data.heap = <uint8_t*>malloc(size)
            if record.data.heap == NULL:
                raise MemoryError()
            memcpy(record.data.heap, data, size)
        else:
            memcpy(record.data.held, data, size)
        record.size = <uint32_t>size
        record.hash = hash
        self.slots[slot] = <uint64_t>(index + 1) | (<uint64_t>hash << 32)
        self.added += 1
        return 1

    cdef Py_ssize_t find(self, const uint8_t* data, Py_ssize_t size, uint32_t hash) noexcept:
        """The slot of an id, or the empty slot that ends its probe run."""
        cdef Py_ssize_t mask = 2 * self.capacity - 1
        cdef Py_ssize_t slot = hash & mask
        cdef uint64_t found
        cdef const Record* record
        while True:
            found = self.slots[slot]
            if found == EMPTY:
                return slot
            if <uint32_t>(found >> 32) == hash:
                record = &self.records[<uint32_t>found - 1]
                if record.size == size and memcmp(bytes_of(record), data, size) == 0:
                    return slot
            slot = (slot + 1) & mask

    cdef void remove(self, Py_ssize_t n) noexcept:
        """Take id number `n` out of the table and free its copy (the ring's ends move
        with the caller)."""
        cdef Py_ssize_t mask = 2 * self.capacity - 1
        cdef Py_ssize_t index = n & (self.capacity - 1)
        cdef const Record* record = &self.records[index]
        cdef Py_ssize_t slot = record.hash & mask, later, home
        cdef uint64_t found
        while <uint32_t>self.slots[slot] != index + 1:
            slot = (slot + 1) & mask
        # Shift back each later entry of the probe run whose home is not between the
        # freed slot and its own: every entry stays reachable from its home.
        later = slot
        while True:
            later = (later + 1) & mask
            found = self.slots[later]
            if found == EMPTY:
                break
            home = (found >> 32) & mask
            if (later > slot and (home <= slot or home > later)) or (
                later < slot and home <= slot and home > later
            ):
                self.slots[slot] = found
                slot = later
        self.slots[slot] = EMPTY
        self.free_id(n)

    cdef void free_id(self, Py_ssize_t n) noexcept:
        cdef Record* record = &self.records[n & (self.capacity - 1)]
        if record.size > HELD_ID:
            free(record.data.heap)

    cdef int grow(self) except -1:
        """Twice the room: the records move to their places in the larger ring and the
        table is built again."""
        cdef Py_ssize_t capacity = self.capacity * 2 if self.capacity else FIRST_CAPACITY
        cdef Py_ssize_t mask = 2 * capacity - 1, n, index, slot
        cdef Record* records = <Record*>malloc(capacity * sizeof(Record))
        cdef uint64_t* slots = <uint64_t*>calloc(2 * capacity, sizeof(uint64_t))
        if records == NULL or slots == NULL:
            free(records)
            free(slots)
            raise MemoryError()
        for n in range(self.first, self.added):
            index = n & (capacity - 1)
            records[index] = self.records[n & (self.capacity - 1)]
            slot = records[index].hash & mask
            while slots[slot] != EMPTY:
                slot = (slot + 1) & mask
            slots[slot] = <uint64_t>(index + 1) | (<uint64_t>records[index].hash << 32)
        free(self.records)
        free(self.slots)
        self.records, self.slots, self.capacity = records, slots, capacity
        return 0

    cdef bytes id_bytes(self, Py_ssize_t n):
        cdef const Record* record = &self.records[n & (self.capacity - 1)]
        return PyBytes_FromStringAndSize(<const char*>bytes_of(record), record.size)


def packed_count(bytes packed):
    """How many ids `EventIds.since` packed."""
    cdef const uint8_t* data = <const uint8_t*>PyBytes_AS_STRING(packed)
    cdef Py_ssize_t at = 0, end = PyBytes_GET_SIZE(packed), count = 0
    while at < end:
        at += 4 + next_packed(data, at, end)
        count += 1
    return count


cdef Py_ssize_t next_packed(const uint8_t* data, Py_ssize_t at, Py_ssize_t end) except -1:
    """The size of the packed id at `at`, checked to lie within `end`."""
    cdef uint32_t size
    if at + 4 > end:
        raise ValueError(f"packed ids cut short at byte {at}")
    memcpy(&size, data + at, 4)
    if at + 4 + <Py_ssize_t>size > end:
        raise ValueError(f"packed ids cut short at byte {at}")
    return size
