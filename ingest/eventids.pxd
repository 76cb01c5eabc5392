# The set of event ids of `ingest/eventids.pyx`, shared with the module that adds ids
# straight from a parsed body (`ingest/jsonfill.pyx`).

from libc.stdint cimport uint8_t, uint32_t, uint64_t


cdef enum:
    HELD_ID = 32  # an id of up to this many bytes is kept in its record (Ray's have 28)


cdef union IdBytes:
    uint8_t* heap  # a longer id's own copy
    uint8_t held[HELD_ID]


cdef struct Record:
    uint32_t size
    uint32_t hash  # hash_of(the id): the table's slot keeps it too
    IdBytes data


cdef class EventIds:
    # The ids in a ring, in the order they came: id number n (`first` <= n < `added`)
    # is at n % capacity.
    cdef Record* records
    cdef Py_ssize_t capacity  # a power of two
    cdef readonly Py_ssize_t first  # the number of the oldest id held
    cdef readonly Py_ssize_t added  # the number the next id gets: ids ever added
    # Open addressing, linear probing, 2 * capacity slots: a slot is 0 (empty) or
    # (record's ring index + 1) | (the id's 32-bit hash << 32).
    cdef uint64_t* slots

    cdef uint32_t prefetch(self, const uint8_t* data, Py_ssize_t size) noexcept
    cdef int add_id(self, const uint8_t* data, Py_ssize_t size, uint32_t hash) except -1
    cdef Py_ssize_t find(self, const uint8_t* data, Py_ssize_t size, uint32_t hash) noexcept
    cdef void remove(self, Py_ssize_t n) noexcept
    cdef void free_id(self, Py_ssize_t n) noexcept
    cdef int grow(self) except -1
    cdef bytes id_bytes(self, Py_ssize_t n)
