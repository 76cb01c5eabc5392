# The column builders of `ingest/columnar.pyx`, shared with the modules that fill them
# from something other than decoded structs (`ingest/jsonfill.pyx`). The `add_*`
# functions append a C value to a column; being inline, they are compiled into each
# module that uses them, one definition for all.

from cpython.object cimport PyObject
from libc.stdint cimport INT32_MAX, int32_t, int64_t, uint8_t
from libc.string cimport memcpy


cdef struct Buffer:
    char* data
    Py_ssize_t size
    Py_ssize_t capacity


# How a column stores its values (the spec's `kind`).
cdef enum Kind:
    K_STR  # str -> UTF-8
    K_TIME  # str (RFC 3339) -> int64 nanoseconds since the epoch; see `time_ns`
    K_HEX  # bytes -> lowercase hex; empty or all 0xff (Ray's nil id) -> null
    K_HEX_RAW  # bytes -> lowercase hex, always
    K_INT  # int -> int64
    K_BOOL
    K_FLOAT  # float -> float64
    K_OBJ  # any Python value, converted by pyarrow at the end (maps, lists)


cdef int reserve(Buffer* buffer, Py_ssize_t more) except -1
cdef bint time_ns(const char* text, Py_ssize_t size, int64_t* ns) noexcept


cdef class Path:
    cdef readonly tuple names
    cdef Py_ssize_t count
    cdef PyObject** types
    cdef Py_ssize_t* offsets

    cdef void learn(self, Py_ssize_t i, object owner)
    cdef object attribute(self, Py_ssize_t i, object owner)
    cdef object walk(self, object root)


cdef class Sizes:
    cdef Py_ssize_t values
    cdef Py_ssize_t offsets
    cdef Py_ssize_t valid


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
    cdef Sizes sizes
    cdef readonly Py_ssize_t length
    cdef Py_ssize_t nulls

    cdef object value_of(self, object root)
    cdef int append(self, object value) except -1
    cdef int repeat(self, Py_ssize_t count) except -1
    cdef tuple validity(self, Py_ssize_t start)
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
    cdef readonly Py_ssize_t refused

    cpdef add(self, object event)
    cdef int end_event(self, int32_t rows) except -1


cdef inline int put(Buffer* buffer, const void* data, Py_ssize_t size) except -1:
    if buffer.size + size > buffer.capacity:
        reserve(buffer, size)
    memcpy(buffer.data + buffer.size, data, size)
    buffer.size += size
    return 0


cdef inline bint is_text(int kind) noexcept:
    """Whether a column of this kind keeps text: its values and their end offsets."""
    return kind == K_STR or kind == K_HEX or kind == K_HEX_RAW


cdef inline int check_text(Column column, Py_ssize_t more) except -1:
    """Whether `more` bytes of text fit: Arrow's strings (and the offsets here) are int32."""
    if column.values.size + more > INT32_MAX:
        raise ValueError(f"column {column.name}: more than 2 GiB of text in one batch")
    return 0


cdef inline int end_text(Column column) except -1:
    """Close a text value: its end offset."""
    cdef int32_t end
    check_text(column, 0)
    end = <int32_t>column.values.size
    put(&column.offsets, &end, sizeof(int32_t))
    return 0


cdef inline int close(Column column, bint ok) except -1:
    """Count the value just added to a column, valid or null."""
    cdef uint8_t flag = ok
    put(&column.valid, &flag, 1)
    column.length += 1
    column.nulls += not ok
    return 0


cdef inline int add_null(Column column) except -1:
    cdef int64_t number = 0
    cdef double real = 0.0
    cdef uint8_t flag = 0
    cdef int kind = column.kind
    if is_text(kind):
        end_text(column)
    elif kind == K_INT or kind == K_TIME:
        put(&column.values, &number, sizeof(int64_t))
    elif kind == K_FLOAT:
        put(&column.values, &real, sizeof(double))
    elif kind == K_BOOL:
        put(&column.values, &flag, 1)
    else:
        column.objects.append(None)
    return close(column, False)


cdef inline int add_text(Column column, const char* text, Py_ssize_t size) except -1:
    """STR."""
    if column.falsy_null and size == 0:
        return add_null(column)
    put(&column.values, text, size)
    end_text(column)
    return close(column, True)


cdef inline int add_ns(Column column, int64_t ns) except -1:
    """TIME, as nanoseconds. Unlike `add_int`'s 0, the epoch is a time like any other:
    `falsy_null` applies to a time's text, before it is read."""
    put(&column.values, &ns, sizeof(int64_t))
    return close(column, True)


cdef inline int add_ray_time(Column column, const char* text, Py_ssize_t size) except -1:
    """TIME, from text in Ray's form (`time_ns`); 1 (and a null) for other text."""
    cdef int64_t ns
    if column.falsy_null and size == 0:
        return add_null(column)
    if not time_ns(text, size, &ns):
        add_null(column)
        return 1
    return add_ns(column, ns)


cdef inline int add_hex(Column column, const unsigned char* raw, Py_ssize_t size) except -1:
    """HEX (empty or all 0xff, Ray's nil id: null) and HEX_RAW, from the bytes."""
    cdef const char* digits = b"0123456789abcdef"
    cdef Py_ssize_t i
    cdef char* out
    cdef bint nil = column.kind == K_HEX or (column.falsy_null and size == 0)
    if nil:
        for i in range(size):
            if raw[i] != 0xFF:
                nil = False
                break
    if nil:
        return add_null(column)
    reserve(&column.values, 2 * size)
    out = column.values.data + column.values.size
    for i in range(size):
        out[2 * i] = digits[raw[i] >> 4]
        out[2 * i + 1] = digits[raw[i] & 15]
    column.values.size += 2 * size
    end_text(column)
    return close(column, True)


cdef inline int add_int(Column column, int64_t number) except -1:
    if column.falsy_null and number == 0:
        return add_null(column)
    put(&column.values, &number, sizeof(int64_t))
    return close(column, True)


cdef inline int add_float(Column column, double real) except -1:
    if column.falsy_null and real == 0.0:
        return add_null(column)
    put(&column.values, &real, sizeof(double))
    return close(column, True)


cdef inline int add_bool(Column column, bint flag) except -1:
    cdef uint8_t value = flag
    if column.falsy_null and not flag:
        return add_null(column)
    put(&column.values, &value, 1)
    return close(column, True)


cdef inline int add_object(Column column, object value) except -1:
    """OBJ: the value as it is (None is null)."""
    column.objects.append(value)
    return close(column, value is not None)
