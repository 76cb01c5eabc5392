# The column builders of `ingest/columnar.pyx`, shared with the modules that fill them
# from something other than decoded structs (`ingest/jsonfill.pyx`).

from cpython.object cimport PyObject
from libc.stdint cimport int32_t, int64_t


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


cdef bint canonical_time(const char* text, Py_ssize_t size) noexcept


cdef class Path:
    cdef readonly tuple names
    cdef Py_ssize_t count
    cdef PyObject** types
    cdef Py_ssize_t* offsets

    cdef void learn(self, Py_ssize_t i, object owner)
    cdef object attribute(self, Py_ssize_t i, object owner)
    cdef object walk(self, object root)


cdef class Column:
    cdef readonly str name
    cdef readonly int kind
    cdef readonly int root
    cdef readonly tuple paths
    cdef tuple walkers
    cdef readonly object default
    cdef readonly bint falsy_null
    cdef readonly object convert
    cdef Buffer values
    cdef Buffer offsets
    cdef Buffer valid
    cdef list objects
    cdef readonly Py_ssize_t length

    cdef object value_of(self, object root)
    cdef int append(self, object value) except -1
    cdef int add_null(self) except -1
    cdef int add_text(self, const char* text, Py_ssize_t size) except -1
    cdef int add_hex(self, const unsigned char* raw, Py_ssize_t size) except -1
    cdef int add_int(self, int64_t number) except -1
    cdef int add_float(self, double real) except -1
    cdef int add_bool(self, bint flag) except -1
    cdef int add_object(self, object value) except -1
    cdef int repeat(self, Py_ssize_t count) except -1
    cdef truncate(self, Py_ssize_t length)
    cdef release(self)


cdef class TableBuilder:
    cdef readonly str table
    cdef readonly object payload
    cdef readonly list event_columns
    cdef readonly list row_columns
    cdef readonly tuple rows_path
    cdef Path rows_walker
    cdef Path payload_walker
    cdef list values
    cdef readonly object rows_of
    cdef readonly object placeholder
    cdef Buffer counts
    cdef readonly Py_ssize_t events
    cdef readonly Py_ssize_t rows
    cdef readonly Py_ssize_t uncertain

    cpdef add(self, object event)
    cdef int end_event(self, int32_t rows) except -1

