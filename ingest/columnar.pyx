# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""Column builders filled from decoded RayEvents in C: the hot loop of ingest.

`ingest.normalize` describes each table as column specs: where a column's value is (an
attribute path from the event, from its payload, or from each of its rows) and how it
is stored. `fill` walks the events of a body once and appends every value to its
builder's buffers, which become Arrow arrays without a Python object per value.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from cpython.float cimport PyFloat_AsDouble
from cpython.long cimport PyLong_AsLongLong
from cpython.object cimport PyObject, Py_TYPE
from cpython.ref cimport Py_INCREF, Py_XDECREF
from libc.stdint cimport int32_t, int64_t, uint8_t
from libc.stdlib cimport calloc, free, realloc
from libc.string cimport memcpy, memset
from posix.mman cimport MAP_ANONYMOUS, MAP_FAILED, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap

import numpy as np
import pyarrow as pa

from lake.schemas import TIME as TIMESTAMP  # `TIME` here is the column kind


cdef extern from "<sys/mman.h>" nogil:  # Linux's; Python.h defines _GNU_SOURCE
    void* mremap(void* address, size_t old_size, size_t new_size, int flags)
    int MREMAP_MAYMOVE


cdef extern from "Python.h":
    ctypedef struct PyMemberDef:
        int type
        Py_ssize_t offset
    ctypedef struct PyMemberDescrObject:
        PyMemberDef* d_member
    int T_OBJECT_EX
    const char* PyUnicode_AsUTF8AndSize(object text, Py_ssize_t* size) except NULL
    PyObject* _PyType_Lookup(PyTypeObject* type, object name)
    PyObject* PyObject_GenericGetAttr(PyObject* owner, PyObject* name)
    ctypedef PyObject* (*getattrofunc)(PyObject*, PyObject*)
    ctypedef struct PyTypeObject:
        getattrofunc tp_getattro


class _Slots:
    __slots__ = ("slot",)


# The type of CPython's slot descriptors.
cdef type MEMBER_DESCRIPTOR_TYPE = type(_Slots.slot)  # kept alive by the module
cdef PyTypeObject* MEMBER_DESCRIPTOR = <PyTypeObject*>MEMBER_DESCRIPTOR_TYPE


# Where a column's paths start (the spec's `root`).
cdef enum Root:
    R_EVENT
    R_PAYLOAD
    R_ROW

STR, TIME, HEX, HEX_RAW, INT, BOOL, FLOAT, OBJ = (
    K_STR, K_TIME, K_HEX, K_HEX_RAW, K_INT, K_BOOL, K_FLOAT, K_OBJ
)
EVENT, PAYLOAD, ROW = R_EVENT, R_PAYLOAD, R_ROW

cdef object MISSING = object()


class RowError(ValueError):
    """A value a column's converter refused; `index` is the event's place in its body."""

    def __init__(self, index, message):
        super().__init__(message)
        self.index = index


# A buffer of this many bytes or more is pages mapped for it alone: grown by mremap,
# which moves no bytes (realloc copied a segment's columns once over as they doubled),
# its unused capacity never touched and so never resident, and its pages given back
# the moment it is freed (glibc's heap kept a written segment's, for the next).
cdef Py_ssize_t MAPPED = 1 << 20

# ...or kept for the next segment's columns, up to POOL_BYTES: a page the kernel maps
# afresh costs 1.6-1.9 us to fault in and zero here, half the collector's page
# faults were its columns', and a segment's columns have the sizes of the one before.
# A column's buffers stay mapped until its segment is written, so memory at the peak
# (the flush) is the same; between flushes, at most POOL_BYTES more stay resident.
cdef enum:
    POOL_SLOTS = 512
cdef Py_ssize_t POOL_BYTES = 32 << 20


cdef struct Region:
    char* data
    Py_ssize_t capacity


cdef Region pool[POOL_SLOTS]
cdef int pooled = 0
cdef Py_ssize_t pooled_bytes = 0


cdef Region from_pool(Py_ssize_t wanted) noexcept:
    """The smallest pooled region of at least `wanted` bytes, out of the pool; or none
    (NULL data). The caller holds the GIL, as every user of the pool does."""
    global pooled, pooled_bytes
    cdef int i, best = -1
    cdef Region found
    for i in range(pooled):
        if pool[i].capacity >= wanted and (best < 0 or pool[i].capacity < pool[best].capacity):
            best = i
    if best < 0:
        return Region(NULL, 0)
    found = pool[best]
    pooled -= 1
    pool[best] = pool[pooled]
    pooled_bytes -= found.capacity
    return found


cdef char* grow(
    char* data, Py_ssize_t size, Py_ssize_t capacity, Py_ssize_t* wanted
) except NULL:
    """Memory for `wanted[0]` bytes holding the first `size` of `data` (of `capacity`);
    `wanted[0]` becomes what it holds, more when a pooled region is larger."""
    cdef void* grown
    cdef Region region
    if wanted[0] < MAPPED:
        grown = realloc(data, wanted[0])
    else:
        region = from_pool(wanted[0])
        if region.data != NULL:
            memcpy(region.data, data, size)
            free_memory(data, capacity)
            wanted[0] = region.capacity
            return region.data
        if capacity >= MAPPED:
            grown = mremap(data, capacity, wanted[0], MREMAP_MAYMOVE)
        else:
            grown = mmap(NULL, wanted[0], PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
            if grown != MAP_FAILED:
                memcpy(grown, data, size)
                free(data)
    if grown == NULL or grown == MAP_FAILED:
        raise MemoryError()
    return <char*>grown


cdef void free_memory(char* data, Py_ssize_t capacity) noexcept:
    global pooled, pooled_bytes
    if capacity < MAPPED:
        free(data)
    elif pooled < POOL_SLOTS and pooled_bytes + capacity <= POOL_BYTES:
        pool[pooled] = Region(data, capacity)
        pooled += 1
        pooled_bytes += capacity
    else:
        munmap(data, capacity)


def pooled_memory():
    """The bytes of freed column buffers kept for reuse, and in how many regions."""
    return pooled_bytes, pooled


cdef int reserve(Buffer* buffer, Py_ssize_t more) except -1:
    cdef Py_ssize_t wanted = buffer.size + more
    cdef Py_ssize_t capacity
    if wanted <= buffer.capacity:
        return 0
    capacity = max(wanted, 2 * buffer.capacity, 64)
    buffer.data = grow(buffer.data, buffer.size, buffer.capacity, &capacity)
    buffer.capacity = capacity
    return 0


cdef void drop(Buffer* buffer) noexcept:
    """Free a buffer's memory; it is left empty."""
    free_memory(buffer.data, buffer.capacity)
    buffer[0] = Buffer(NULL, 0, 0)


cdef bytes take_bytes(Buffer* buffer, Py_ssize_t start, Py_ssize_t end):
    return buffer.data[start:end]


cdef class Block:
    """Memory a column gave to Arrow: freed when the last buffer over it goes."""
    cdef char* data
    cdef Py_ssize_t capacity

    def __dealloc__(self):
        free_memory(self.data, self.capacity)


cdef object give_buffer(Buffer* buffer):
    """An Arrow buffer over `buffer`'s bytes, which it now owns; `buffer` is left empty."""
    cdef Block block = Block()
    block.data = buffer.data
    block.capacity = buffer.capacity
    size = buffer.size
    buffer[0] = Buffer(NULL, 0, 0)
    if block.data == NULL:
        return pa.py_buffer(b"")
    return pa.foreign_buffer(<size_t>block.data, size, base=block)


cdef inline int digits(const char* text, Py_ssize_t count):
    """The number written by `count` ASCII digits, or -1."""
    cdef int value = 0
    cdef Py_ssize_t i
    for i in range(count):
        if not b"0"[0] <= text[i] <= b"9"[0]:
            return -1
        value = value * 10 + (text[i] - b"0"[0])
    return value


cdef bint time_ns(const char* text, Py_ssize_t size, int64_t* ns) noexcept:
    """A time in the form Ray prints, `YYYY-MM-DDTHH:MM:SS[.fraction]Z`, as nanoseconds
    since the epoch: False for any other text, or for an instant outside timestamp[ns]'s
    range (1678-2261), which Arrow then judges."""
    cdef int year, month, day, last_day, hour, minute, second
    cdef int64_t days, era_year, fraction = 0
    cdef Py_ssize_t i = 19, scale
    if size < 20 or text[size - 1] != b"Z"[0]:
        return False
    if text[4] != b"-"[0] or text[7] != b"-"[0] or text[10] != b"T"[0]:
        return False
    if text[13] != b":"[0] or text[16] != b":"[0]:
        return False
    year, month, day = digits(text, 4), digits(text + 5, 2), digits(text + 8, 2)
    if not 1678 <= year <= 2261 or not 1 <= month <= 12 or day < 1:
        return False
    if month == 2:
        last_day = 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    else:
        last_day = 30 if month in (4, 6, 9, 11) else 31
    if day > last_day:
        return False
    hour, minute, second = digits(text + 11, 2), digits(text + 14, 2), digits(text + 17, 2)
    if not 0 <= hour <= 23 or not 0 <= minute <= 59 or not 0 <= second <= 59:
        return False
    if text[19] == b"."[0]:
        i = 20
        while i < size - 1 and b"0"[0] <= text[i] <= b"9"[0]:
            fraction = fraction * 10 + (text[i] - b"0"[0])
            i += 1
        if not 21 <= i <= 29:  # one to nine digits
            return False
        for scale in range(29 - i):
            fraction *= 10
    if i != size - 1:
        return False
    # Days since 1970-01-01 of a civil date (H. Hinnant's days_from_civil; years > 0).
    era_year = year - (month <= 2)
    days = (
        (era_year // 400) * 146097 + (era_year % 400) * 365 + (era_year % 400) // 4
        - (era_year % 400) // 100 + (153 * (month + (-3 if month > 2 else 9)) + 2) // 5
        + day - 1 - 719468
    )
    ns[0] = ((days * 24 + hour) * 60 + minute) * 60 + second
    ns[0] = ns[0] * 1000000000 + fraction
    return True


cdef object read_time(str text):
    """A time as a TIME column reads it, in nanoseconds: Ray's form in C, any other as
    Arrow parses it into the lake's type; None when Arrow refuses it."""
    cdef Py_ssize_t size
    cdef int64_t ns
    cdef const char* data = PyUnicode_AsUTF8AndSize(text, &size)
    if time_ns(data, size, &ns):
        return ns
    try:
        return pa.array([text], pa.string()).cast(TIMESTAMP).cast(pa.int64())[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        return None


cdef class Path:
    """An attribute path. Each step remembers the slot offset of its attribute in the
    type it last met (msgspec's struct fields are slots), so that the next object of that
    type is read as CPython's member descriptor reads it, without a lookup. `types`
    holds, per step, the type last met (a reference is held) or NULL; `offsets` the
    slot offset in that type, or -1."""

    def __cinit__(self, names):
        self.names = tuple(names)
        self.count = len(self.names)
        self.types = <PyObject**>calloc(self.count, sizeof(PyObject*))
        self.offsets = <Py_ssize_t*>calloc(self.count, sizeof(Py_ssize_t))
        if self.types == NULL or self.offsets == NULL:
            raise MemoryError()

    def __dealloc__(self):
        cdef Py_ssize_t i
        if self.types != NULL:
            for i in range(self.count):
                Py_XDECREF(self.types[i])
        free(self.types)
        free(self.offsets)

    cdef void learn(self, Py_ssize_t i, object owner):
        cdef PyTypeObject* kind = Py_TYPE(owner)
        cdef PyObject* found = NULL
        cdef PyMemberDef* member
        cdef Py_ssize_t offset = -1
        if kind.tp_getattro == PyObject_GenericGetAttr:
            found = _PyType_Lookup(kind, self.names[i])
        if found != NULL and Py_TYPE(<object>found) == MEMBER_DESCRIPTOR:
            member = (<PyMemberDescrObject*>found).d_member
            if member.type == T_OBJECT_EX:
                offset = member.offset
        Py_XDECREF(self.types[i])
        Py_INCREF(<object>kind)
        self.types[i] = <PyObject*>kind
        self.offsets[i] = offset

    cdef object attribute(self, Py_ssize_t i, object owner):
        cdef PyObject* value
        if <PyObject*>Py_TYPE(owner) != self.types[i]:
            self.learn(i, owner)
        if self.offsets[i] >= 0:
            value = (<PyObject**>((<char*><void*>owner) + self.offsets[i]))[0]
            if value != NULL:
                return <object>value
        return getattr(owner, self.names[i])

    cdef object walk(self, object root):
        """The value at the end of the path; MISSING when a step before it is None."""
        cdef Py_ssize_t i
        for i in range(self.count):
            if i and root is None:
                return MISSING
            root = self.attribute(i, root)
        return root


cdef inline Py_ssize_t first_capacity(Py_ssize_t size) noexcept:
    """What a buffer that reached `size` in the segment before starts at: an eighth
    more (the next segment may be a little larger); nothing set aside for one that
    reaches MAPPED, as it grows without a copy past it and set aside early, its memory
    would be resident (pooled) long before it fills."""
    return size + size // 8 if size + size // 8 < MAPPED else 0


cdef class Sizes:
    """The sizes a column's buffers reached when it was last emptied, shared by the
    columns made for one spec segment after segment (`TableBuilder.fresh`): a new column
    starts at them (`first_capacity`), as a segment is like the one before, so buffers
    under MAPPED are not copied over as they double (realloc's copies were a twentieth
    of `take`'s CPU). The cost: those buffers are whole from a segment's start, 10-15 MiB
    more at the collector's peak (the flush of the segment before)."""


cdef class Column:
    """One column's values, appended one at a time: `paths` are attribute names, per
    alternative (`walkers` a Path each); `values` holds UTF-8 text (STR, HEX), int64,
    float64 or a byte per bool, `offsets` the int32 end offsets into it (STR, HEX),
    `valid` a byte per value, `objects` the values of an OBJ column.

    `append` takes a Python value; the `add_*` functions of `columnar.pxd` take a C
    value of the column's kind (no converter), here and in fillers that read something
    other than Python objects. `sizes` are shared with the columns of the same spec
    before it (`Sizes`); None: sizes of its own.
    """

    def __init__(
        self, name, kind, root, paths, default=None, falsy_null=False, convert=None,
        Sizes sizes=None,
    ):
        self.name = name
        self.kind = kind
        self.root = root
        self.paths = tuple(tuple(path) for path in paths)
        self.walkers = tuple(Path(path) for path in self.paths)
        self.default = default
        self.falsy_null = falsy_null
        self.convert = convert
        self.objects = []
        self.length = 0
        self.sizes = Sizes() if sizes is None else sizes
        reserve(&self.values, first_capacity(self.sizes.values))
        reserve(&self.offsets, first_capacity(self.sizes.offsets))
        reserve(&self.valid, first_capacity(self.sizes.valid))
        cdef int32_t zero = 0
        put(&self.offsets, &zero, sizeof(int32_t))

    def __dealloc__(self):
        drop(&self.values)
        drop(&self.offsets)
        drop(&self.valid)

    cdef object value_of(self, object root):
        cdef Path path
        cdef object value
        for path in self.walkers:
            value = path.walk(root)
            if value is not MISSING:
                return value
        return self.default

    cdef int append(self, object value) except -1:
        """Add a value; 1 for a time neither in Ray's form nor one Arrow parses (added
        as a null), else 0."""
        cdef Py_ssize_t size
        cdef const char* text
        cdef int kind = self.kind
        if self.convert is not None:
            value = self.convert(value)
        if value is None or (self.falsy_null and not value):
            return add_null(self)
        if kind == K_STR:
            text = PyUnicode_AsUTF8AndSize(value, &size)
            return add_text(self, text, size)
        if kind == K_TIME:
            found = read_time(value)
            if found is None:
                add_null(self)
                return 1
            return add_ns(self, found)
        if kind == K_HEX or kind == K_HEX_RAW:
            return add_hex(
                self, <const unsigned char*>PyBytes_AS_STRING(value), PyBytes_GET_SIZE(value)
            )
        if kind == K_INT:
            return add_int(self, PyLong_AsLongLong(value))
        if kind == K_FLOAT:
            return add_float(self, PyFloat_AsDouble(value))
        if kind == K_BOOL:
            return add_bool(self, value is True)
        return add_object(self, value)

    cdef int repeat(self, Py_ssize_t count) except -1:
        """Add the last value `count` times more (an event's own value on its rows)."""
        cdef int32_t* ends
        cdef int64_t start, size, end
        cdef Py_ssize_t i, width
        cdef uint8_t ok
        if count <= 0:
            return 0
        ok = <uint8_t>self.valid.data[self.length - 1]
        if is_text(self.kind):
            ends = <int32_t*>self.offsets.data
            start, size = ends[self.length - 1], ends[self.length] - ends[self.length - 1]
            check_text(self, count * size)
            reserve(&self.values, count * size)
            reserve(&self.offsets, count * sizeof(int32_t))
            end = self.values.size
            for i in range(count):
                memcpy(self.values.data + end, self.values.data + start, size)
                end += size
                (<int32_t*>(self.offsets.data + self.offsets.size))[i] = <int32_t>end
            self.values.size = end
            self.offsets.size += count * sizeof(int32_t)
        elif self.kind == K_OBJ:
            last = self.objects[self.length - 1]
            for i in range(count):
                self.objects.append(last)
        else:
            width = 1 if self.kind == K_BOOL else 8
            reserve(&self.values, count * width)
            for i in range(count):
                memcpy(self.values.data + self.values.size, self.values.data + self.values.size - width, width)
                self.values.size += width
        reserve(&self.valid, count)
        memset(self.valid.data + self.valid.size, ok, count)
        self.valid.size += count
        self.length += count
        self.nulls += 0 if ok else count
        return 0

    cdef truncate(self, Py_ssize_t length):
        """Forget the values from `length` on."""
        cdef int32_t* ends = <int32_t*>self.offsets.data
        cdef Py_ssize_t i
        if length >= self.length:
            return
        if is_text(self.kind):
            self.values.size = ends[length]
            self.offsets.size = (length + 1) * sizeof(int32_t)
        elif self.kind == K_INT or self.kind == K_TIME or self.kind == K_FLOAT:
            self.values.size = length * 8
        elif self.kind == K_BOOL:
            self.values.size = length
        else:
            del self.objects[length:]
        for i in range(length, self.length):
            self.nulls -= not self.valid.data[i]
        self.valid.size = length
        self.length = length

    cdef tuple validity(self, Py_ssize_t start):
        """(Arrow's validity bitmap, or None without nulls; the null count) of the
        values from `start` on."""
        if start == 0 and self.nulls == 0:
            return None, 0
        valid = np.frombuffer(take_bytes(&self.valid, start, self.length), dtype=np.bool_)
        nulls = self.length - start - int(np.count_nonzero(valid))
        return pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None, nulls

    def array(self, data_type, Py_ssize_t start=0):
        """The values from `start` on as an Arrow array of `data_type` (OBJ columns) or
        of the kind's own type (string, int64, the lake's timestamp, float64, bool)."""
        cdef Py_ssize_t count = self.length - start
        cdef int32_t* ends = <int32_t*>self.offsets.data
        bitmap, nulls = self.validity(start)
        cdef int kind = self.kind
        if kind == K_OBJ:
            return pa.array(self.objects[start:], data_type)
        if is_text(kind):
            first = ends[start]
            offsets = np.frombuffer(
                take_bytes(&self.offsets, start * 4, (self.length + 1) * 4), dtype=np.int32
            )
            if first:
                offsets = offsets - first
            text = pa.py_buffer(take_bytes(&self.values, first, ends[self.length]))
            return pa.StringArray.from_buffers(count, pa.py_buffer(offsets), text, bitmap, nulls)
        if kind == K_INT or kind == K_TIME:
            values = pa.py_buffer(take_bytes(&self.values, start * 8, self.length * 8))
            arrow_type = pa.int64() if kind == K_INT else TIMESTAMP
            return pa.Array.from_buffers(arrow_type, count, [bitmap, values], nulls)
        if kind == K_FLOAT:
            values = pa.py_buffer(take_bytes(&self.values, start * 8, self.length * 8))
            return pa.Array.from_buffers(pa.float64(), count, [bitmap, values], nulls)
        flags = np.frombuffer(take_bytes(&self.values, start, self.length), dtype=np.bool_)
        values = pa.py_buffer(np.packbits(flags, bitorder="little"))
        return pa.Array.from_buffers(pa.bool_(), count, [bitmap, values], nulls)

    def give_array(self, data_type):
        """Every value as `array` makes them, over the column's own memory where Arrow's
        layout is the column's (text, int64, times, float64): no copy of the values.
        The column is empty afterwards; the sizes it had are kept for the next column
        of its spec."""
        cdef int kind = self.kind
        cdef Py_ssize_t count = self.length
        self.sizes.values = self.values.size
        self.sizes.offsets = self.offsets.size
        self.sizes.valid = self.valid.size
        if kind == K_OBJ or kind == K_BOOL:
            array = self.array(data_type)  # a copy: Arrow's layout is not the column's
        else:
            bitmap, nulls = self.validity(0)
            if is_text(kind):
                array = pa.StringArray.from_buffers(
                    count, give_buffer(&self.offsets), give_buffer(&self.values), bitmap, nulls
                )
            else:
                arrow_type = {K_INT: pa.int64(), K_TIME: TIMESTAMP, K_FLOAT: pa.float64()}[kind]
                array = pa.Array.from_buffers(
                    arrow_type, count, [bitmap, give_buffer(&self.values)], nulls
                )
        self.release()
        return array

    cdef release(self):
        """Forget every value and give the memory back."""
        cdef int32_t zero = 0
        drop(&self.values)
        drop(&self.offsets)
        drop(&self.valid)
        put(&self.offsets, &zero, sizeof(int32_t))
        self.objects = []
        self.length = 0
        self.nulls = 0



cdef class TableBuilder:
    """The columns of one event type's table, a value per row: a lifecycle event makes a
    row per state transition, a profile event one per entry, and the values the event
    has once (`event_columns`) are repeated on each of its rows. `counts` holds how many
    rows each event made (int32 each).

    `payload` is the RayEvent attribute holding the payload (None: the event itself);
    `rows_path` leads from the payload to its list of rows (None: one row), or
    `rows_of`, a function of the payload, gives them; `placeholder` is the row of an
    event that lists none (None: no row). `values` holds the event columns' values of
    the event being added; `refused` counts the times added that neither are in Ray's
    form nor parse in Arrow (each added as a null)."""

    def __init__(
        self, table, payload, event_columns, row_columns=(), rows_path=None, rows_of=None,
        placeholder=None,
    ):
        self.table = table
        self.payload = payload
        self.event_columns = list(event_columns)
        self.values = [None] * len(self.event_columns)
        self.row_columns = list(row_columns)
        self.rows_path = tuple(rows_path) if rows_path is not None else None
        self.rows_walker = Path(self.rows_path) if rows_path is not None else None
        self.payload_walker = Path((payload,)) if payload is not None else None
        self.rows_of = rows_of
        self.placeholder = placeholder
        self.events = 0
        self.rows = 0

    def __dealloc__(self):
        drop(&self.counts)

    def fresh(self, bint sized=True):
        """An empty builder of the same spec. `sized`: its columns start at the sizes
        this builder's (or the last of its fresh ones) had when emptied (`Sizes`), else
        small."""
        cdef Column c
        return TableBuilder(
            self.table,
            self.payload,
            [Column(c.name, c.kind, c.root, c.paths, c.default, c.falsy_null, c.convert,
                    c.sizes if sized else None)
             for c in self.event_columns],
            [Column(c.name, c.kind, c.root, c.paths, c.default, c.falsy_null, c.convert,
                    c.sizes if sized else None)
             for c in self.row_columns],
            self.rows_path,
            self.rows_of,
            self.placeholder,
        )

    cpdef add(self, object event):
        cdef object payload = (
            self.payload_walker.walk(event) if self.payload_walker is not None else event
        )
        cdef Column column
        cdef object items, item
        cdef int32_t count
        cdef list values = self.values
        cdef Py_ssize_t i, width = len(self.event_columns)
        for i in range(width):
            column = <Column>self.event_columns[i]
            values[i] = column.value_of(event if column.root == R_EVENT else payload)
        if self.rows_of is not None:
            items = self.rows_of(payload)
        elif self.rows_path is not None:
            items = self.rows_walker.walk(payload)
            if items is MISSING:
                items = ()
        else:
            items = None
        if items is None:
            items = (None,)
        elif not items and self.placeholder is not None:
            items = (self.placeholder,)
        count = len(items)
        for item in items:  # the event's own values are repeated on each of its rows
            for i in range(width):
                self.refused += (<Column>self.event_columns[i]).append(values[i])
            for column in self.row_columns:
                self.refused += column.append(column.value_of(item))
        self.end_event(count)

    cdef int end_event(self, int32_t rows) except -1:
        """Count an event whose `rows` rows were just added to every column."""
        put(&self.counts, &rows, sizeof(int32_t))
        self.events += 1
        self.rows += rows
        return 0

    def mark(self):
        return (self.events, self.rows)

    def rollback(self, mark):
        """Forget everything added since `mark()` gave `mark`."""
        cdef Py_ssize_t events = mark[0], rows = mark[1]
        cdef Column column
        for column in self.event_columns + self.row_columns:
            column.truncate(rows)
        self.counts.size = events * sizeof(int32_t)
        self.events = events
        self.rows = rows

    def release(self):
        """Forget everything added and give the memory back."""
        cdef Column column
        for column in self.event_columns + self.row_columns:
            column.release()
        drop(&self.counts)
        self.events = 0
        self.rows = 0

    def counts_array(self):
        return np.frombuffer(take_bytes(&self.counts, 0, self.counts.size), dtype=np.int32)



def fill(list events, dict builders, object seen, dict checks, list unknown):
    """Append each event to the builder of its type (`builders`, by event type); return
    how many of the times added were refused (see `TableBuilder.refused`).

    An event whose id is in `seen` (an `ingest.eventids.EventIds`, updated) is a repeat:
    it goes to the builder in `checks` instead, so that its values are checked and then
    dropped. Events of a type without a builder are listed in `unknown` as (index,
    repeated?).
    """
    cdef Py_ssize_t index = 0
    cdef TableBuilder builder
    cdef object event
    cdef bint repeated
    cdef Py_ssize_t refused = 0
    for found in (*builders.values(), *checks.values()):
        (<TableBuilder>found).refused = 0
    for event in events:
        repeated = not seen.add(event.event_id)
        found = (checks if repeated else builders).get(event.event_type)
        if found is None:
            unknown.append((index, repeated))
        else:
            builder = <TableBuilder>found
            try:
                builder.add(event)
            except ValueError as exc:
                raise RowError(index, str(exc)) from None
        index += 1
    for found in (*builders.values(), *checks.values()):
        refused += (<TableBuilder>found).refused
    return refused


def first_incomplete(list events, dict payload_fields):
    """The index of the first event without an id, a session name, or the payload its
    type calls for (`payload_fields`: event type -> field); -1 when there is none."""
    cdef Py_ssize_t index = 0
    cdef object event, field
    for event in events:
        if not event.event_id or not event.session_name:
            return index
        field = payload_fields.get(event.event_type)
        if field is not None and getattr(event, field) is None:
            return index
        index += 1
    return -1


def ray_time_ns(str text):
    """A time in Ray's form as nanoseconds, as `fill` reads it without Arrow; None for
    any other text."""
    cdef Py_ssize_t size
    cdef int64_t ns
    cdef const char* data = PyUnicode_AsUTF8AndSize(text, &size)
    return ns if time_ns(data, size, &ns) else None


def time_of(str text):
    """A time as a TIME column reads it (nanoseconds), or None when it refuses it."""
    return read_time(text)
