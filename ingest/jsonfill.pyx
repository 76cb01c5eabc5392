# cython: language_level=3, boundscheck=False, wraparound=False, initializedcheck=False
"""A POST body's JSON straight into the column builders: the fast path of `take`.

yyjson (vendored in `ingest/vendor/yyjson`) parses the body into a DOM without the GIL.
Each event is checked against the wire structs of `ingest.wire`, read through
`msgspec.inspect`, so that every declared field of every struct is checked as msgspec
checks it (including fields no column reads); then its values are appended to the
builders of `ingest.columnar` along the same column specs `ingest.normalize` describes.
No Python object is made per value (the event ids go straight into `seen`, an
`ingest.eventids.EventIds`), but for the values of map and converted columns.

`JsonFill.take` either fills exactly what `parse_body` + `normalize` would (the same
rows in the same builders, the same ids seen) or raises `Declined` and leaves the
builders and `seen` as they were; the caller then takes the exact path, which gives
the precise error or handles the rare case. It declines anything not plainly
canonical: a JSON error, duplicate keys, an unknown event type (or one whose rows
Python code makes), an int written other than as a JSON integer or a string of plain
decimal digits, a float or bool written as a string, bytes other than canonical padded
base64, a time not in Ray's own form (`columnar.time_ns`), an event `parse_body` or `normalize`
would refuse, a converter that raises.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from cpython.unicode cimport PyUnicode_DecodeUTF8
from libc.stdint cimport int64_t, uint8_t, uint32_t, uint64_t
from libc.stdlib cimport free, realloc
from libc.string cimport memcmp, memcpy, memset

import msgspec

from ingest.columnar cimport (
    K_BOOL,
    K_FLOAT,
    K_HEX,
    K_HEX_RAW,
    K_INT,
    K_OBJ,
    K_STR,
    K_TIME,
    Column,
    TableBuilder,
    add_bool,
    add_float,
    add_hex,
    add_int,
    add_null,
    add_ray_time,
    add_text,
)
from ingest.eventids cimport EventIds
from ingest.columnar import BOOL, EVENT, FLOAT, HEX, HEX_RAW, INT, OBJ, PAYLOAD, ROW, STR, TIME
from lake.layout import LayoutError, check_session


cdef extern from "yyjson.h" nogil:
    ctypedef struct yyjson_val:
        uint64_t tag
    ctypedef struct yyjson_doc:
        pass
    ctypedef struct yyjson_alc:
        pass
    ctypedef uint32_t yyjson_read_flag
    ctypedef uint32_t yyjson_write_flag
    ctypedef struct yyjson_read_err:
        uint32_t code
        const char* msg
        size_t pos
    yyjson_read_flag YYJSON_READ_BIGNUM_AS_RAW
    yyjson_doc* yyjson_read_opts(
        char* dat, size_t len, yyjson_read_flag flg, const yyjson_alc* alc, yyjson_read_err* err
    )
    yyjson_alc* yyjson_alc_dyn_new()
    void yyjson_alc_dyn_free(yyjson_alc* alc)
    void yyjson_doc_free(yyjson_doc* doc)
    yyjson_val* yyjson_doc_get_root(yyjson_doc* doc)
    char* yyjson_val_write(const yyjson_val* val, yyjson_write_flag flg, size_t* len)
    bint yyjson_is_raw(yyjson_val* val)
    bint yyjson_is_null(yyjson_val* val)
    bint yyjson_is_bool(yyjson_val* val)
    bint yyjson_is_true(yyjson_val* val)
    bint yyjson_is_uint(yyjson_val* val)
    bint yyjson_is_sint(yyjson_val* val)
    bint yyjson_is_real(yyjson_val* val)
    bint yyjson_is_str(yyjson_val* val)
    bint yyjson_is_arr(yyjson_val* val)
    bint yyjson_is_obj(yyjson_val* val)
    uint64_t unsafe_yyjson_get_uint(yyjson_val* val)
    int64_t unsafe_yyjson_get_sint(yyjson_val* val)
    double unsafe_yyjson_get_real(yyjson_val* val)
    const char* unsafe_yyjson_get_str(yyjson_val* val)
    size_t unsafe_yyjson_get_len(yyjson_val* val)
    yyjson_val* unsafe_yyjson_get_first(yyjson_val* ctn)
    yyjson_val* unsafe_yyjson_get_next(yyjson_val* val)


class Declined(Exception):
    """The fast path leaves this body to the exact path; the message says why."""


# What a wire field holds (from `msgspec.inspect`).
cdef enum Wired:
    W_STR
    W_BYTES  # standard padded base64
    W_BOOL
    W_FLOAT
    W_INT  # int64: a JSON integer, or a string of decimal digits (msgspec's lax mode)
    W_UINT  # uint64: the same, not negative
    W_STRUCT
    W_LIST
    W_DICT
    W_RAW  # any JSON, kept as its text

# How a column's value is appended.
cdef enum Mode:
    M_CONSTANT  # no path: the column's default
    M_DIRECT  # a C value of the column's kind
    M_PYTHON  # a Python value: a map, or the input of a converter

# What an M_DIRECT column gets for a field the JSON lacks.
cdef enum Absent:
    A_PYTHON  # the field's default, as a Python value
    A_NULL  # the default is None
    A_ZERO  # the default is the zero of the column's kind: "", b"", 0, 0.0, False

# What a column's path reached.
cdef enum Reached:
    F_MISSING  # a step before the last is None: the column's default
    F_ABSENT  # the field is not in the JSON: its default
    F_NULL
    F_VALUE

cdef int R_EVENT = EVENT, R_PAYLOAD = PAYLOAD, R_ROW = ROW
# The wire field a column of each kind reads without a converter.
DIRECT_FIELDS = {
    STR: W_STR, TIME: W_STR, HEX: W_BYTES, HEX_RAW: W_BYTES, INT: W_INT, BOOL: W_BOOL,
    FLOAT: W_FLOAT,
}
SCALARS = (W_STR, W_BYTES, W_BOOL, W_FLOAT, W_INT, W_UINT)
# The wire types whose kind is their type alone (ints have bounds to check).
PLAIN_KINDS = {
    msgspec.inspect.StrType: W_STR,
    msgspec.inspect.BytesType: W_BYTES,
    msgspec.inspect.BoolType: W_BOOL,
    msgspec.inspect.FloatType: W_FLOAT,
    msgspec.inspect.RawType: W_RAW,
}

# Unknown fields and raw JSON may nest this deep: msgspec recurses, and gives up near
# Python's recursion limit with a RecursionError rather than a validation error.
cdef int MAX_DEPTH = 64
cdef uint64_t INT64_MAX = 9223372036854775807ULL
cdef uint64_t UINT64_MAX = 18446744073709551615ULL
# Floats from JSON integers below 2**53 are exact, so C and msgspec surely agree.
cdef uint64_t EXACT_INT = 9007199254740992ULL
# Objects up to this size are checked for duplicate keys pair by pair.
cdef Py_ssize_t PAIRWISE = 16

cdef const char* ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
cdef signed char[256] BASE64  # a character's value, or -1
memset(BASE64, -1, 256)
cdef int _value
for _value in range(64):
    BASE64[<uint8_t>ALPHABET[_value]] = _value


cdef struct Node:
    int kind
    bint nullable
    int shape  # W_STRUCT, and W_LIST of structs: the struct's shape, else -1
    int item  # W_LIST: the items' node; W_DICT: the values' node
    int key  # W_DICT: the keys' node (W_STR or W_INT)


cdef struct Shape:
    int first  # its fields are fields[first:first + count]
    int count
    bint required  # whether any field is


cdef struct Field:
    const char* key  # as the JSON spells it
    Py_ssize_t size
    int node
    bint required


cdef struct Slot:
    yyjson_val* value  # NULL: absent
    # A struct (or list of structs): the index of its (first struct's) slots, or -1;
    # bytes: where they are decoded in `Walk.decoded`; an integer: its value.
    int64_t data


cdef struct Path:
    int first  # its steps (slot offsets in each step's struct) are steps[first:first + count]
    int count
    int field  # the last step's field
    int absent  # what the column gets when that field is absent (M_DIRECT columns)
    bint raw  # the field is raw JSON, whose null is a value like any other


cdef struct Plan:
    int mode
    int root
    int first  # its paths are paths[first:first + count], alternatives in order
    int count


cdef struct Found:
    int found
    yyjson_val* value
    int64_t data  # the slot's
    int field
    int absent  # the path's Absent


# ---------------------------------------------------------------------------------------
# Scalars as msgspec reads them, canonical forms only.


cdef bint decimal(const char* text, size_t size, bint is_signed, int64_t* value) noexcept:
    """A string of plain decimal digits (`-` first if `is_signed`; no leading zero, no
    "-0") as an int64, or as a uint64 stored in `value`'s bits."""
    cdef size_t i = 0
    cdef uint64_t total = 0, digit
    cdef bint negative = False
    if size and text[0] == b"-"[0]:
        if not is_signed:
            return False
        negative = True
        i = 1
    if i == size or (text[i] == b"0"[0] and (size - i > 1 or negative)):
        return False
    while i < size:
        if not b"0"[0] <= text[i] <= b"9"[0]:
            return False
        digit = text[i] - b"0"[0]
        if total > (UINT64_MAX - digit) // 10:
            return False
        total = total * 10 + digit
        i += 1
    if is_signed:
        if total > INT64_MAX + <uint64_t>negative:
            return False
        value[0] = -<int64_t>(total - 1) - 1 if negative else <int64_t>total
    else:
        value[0] = <int64_t>total
    return True


cdef bint int_of(yyjson_val* value, int kind, int64_t* number) noexcept:
    """An int64 (W_INT) or a uint64 (W_UINT, its bits in `number`), from a JSON integer
    or a string of digits."""
    cdef uint64_t unsigned_value
    if yyjson_is_uint(value):
        unsigned_value = unsafe_yyjson_get_uint(value)
        if kind == W_INT and unsigned_value > INT64_MAX:
            return False
        number[0] = <int64_t>unsigned_value
        return True
    if yyjson_is_sint(value):  # negative (or "-0")
        number[0] = unsafe_yyjson_get_sint(value)
        return kind == W_INT
    if yyjson_is_str(value):
        return decimal(
            unsafe_yyjson_get_str(value), unsafe_yyjson_get_len(value), kind == W_INT, number
        )
    return False


cdef bint float_of(yyjson_val* value, double* real) noexcept:
    """A JSON number as a float: msgspec takes integers too (but not strings)."""
    cdef uint64_t unsigned_value
    cdef int64_t signed_value
    if yyjson_is_real(value):
        real[0] = unsafe_yyjson_get_real(value)
        return True
    if yyjson_is_uint(value):
        unsigned_value = unsafe_yyjson_get_uint(value)
        real[0] = <double>unsigned_value
        return unsigned_value <= EXACT_INT
    if yyjson_is_sint(value):
        signed_value = unsafe_yyjson_get_sint(value)
        real[0] = <double>signed_value
        # "-0" is read as an integer 0: msgspec may make it -0.0
        return signed_value < 0 and signed_value >= -<int64_t>EXACT_INT
    return False


cdef Py_ssize_t unbase64(const char* text, size_t size, unsigned char* out) noexcept:
    """Decode canonical standard padded base64 into `out` (room for size / 4 * 3
    bytes); the decoded size, or -1 for anything else."""
    cdef size_t i
    cdef Py_ssize_t written = 0
    cdef int a, b, c, d
    if size % 4:
        return -1
    for i in range(0, size, 4):
        a = BASE64[<uint8_t>text[i]]
        b = BASE64[<uint8_t>text[i + 1]]
        c = BASE64[<uint8_t>text[i + 2]]
        d = BASE64[<uint8_t>text[i + 3]]
        if a < 0 or b < 0:
            return -1
        out[written] = <unsigned char>((a << 2) | (b >> 4))
        written += 1
        if c < 0 or d < 0:
            if i + 4 != size or text[i + 3] != b"="[0]:
                return -1
            if c < 0:  # "xx=="
                if text[i + 2] != b"="[0] or b & 15:
                    return -1
                return written
            if c & 3:  # "xxx="
                return -1
            out[written] = <unsigned char>(((b & 15) << 4) | (c >> 2))
            return written + 1
        out[written] = <unsigned char>(((b & 15) << 4) | (c >> 2))
        out[written + 1] = <unsigned char>(((c & 3) << 6) | d)
        written += 2
    return written


cdef inline bint same(const char* a, const char* b, size_t size) noexcept:
    """Whether two strings of `size` bytes are equal: keys and names, compared by
    words (overlapping at the end) rather than byte by byte or by a call to memcmp."""
    cdef uint64_t x, y
    cdef uint32_t u, v
    cdef size_t i = 0
    if size >= 8:
        while i + 8 < size:
            memcpy(&x, a + i, 8)
            memcpy(&y, b + i, 8)
            if x != y:
                return False
            i += 8
        memcpy(&x, a + size - 8, 8)
        memcpy(&y, b + size - 8, 8)
        return x == y
    if size >= 4:
        memcpy(&u, a, 4)
        memcpy(&v, b, 4)
        memcpy(&x, a + size - 4, 4)
        memcpy(&y, b + size - 4, 4)
        return u == v and <uint32_t>x == <uint32_t>y
    for i in range(size):
        if a[i] != b[i]:
            return False
    return True


cdef inline Py_ssize_t decoded_size(yyjson_val* value) noexcept:
    """The size of canonical base64's bytes."""
    cdef size_t size = unsafe_yyjson_get_len(value)
    cdef const char* text = unsafe_yyjson_get_str(value)
    if size == 0:
        return 0
    return size // 4 * 3 - (text[size - 1] == b"="[0]) - (text[size - 2] == b"="[0])


cdef inline int key_hash(const char* name, size_t size) noexcept:
    """Where a key (not empty) is looked for in a shape's `Wire.lookup`."""
    return (size * 7 + <uint8_t>name[0] * 3 + <uint8_t>name[size - 1] * 5 + <uint8_t>name[size // 2]) & 255


cdef bytes written(yyjson_val* value):
    """A value as JSON text again (for msgspec to decode)."""
    cdef size_t size
    cdef char* text = yyjson_val_write(value, 0, &size)
    if text == NULL:
        raise MemoryError()
    try:
        return PyBytes_FromStringAndSize(text, size)
    finally:
        free(text)


# ---------------------------------------------------------------------------------------
# The wire structs and the tables' specs, as C arrays.


cdef class Wire:
    """The wire structs of one naming as C arrays of nodes, struct shapes and fields.
    Per field: its attribute name, default, default factory and declared Python type
    (a converter's input is decoded by msgspec against it); the factory is None when
    there is none."""

    cdef Node* nodes
    cdef Shape* shapes
    cdef Field* fields
    cdef signed char* lookup  # per shape, by `key_hash`: a field, -1 (none) or -2 (several)
    cdef list keys, names, defaults, factories, types
    cdef dict decoders
    cdef int event_shape

    def __init__(self, event_struct):
        self.keys, self.names, self.defaults, self.factories, self.types = [], [], [], [], []
        self.decoders = {}
        nodes = []  # [kind, nullable, shape, item, key] per node
        shapes = {}  # struct class -> shape index
        struct_fields = []  # per shape: (msgspec field info, node, declared type)

        def node(info):
            nullable = isinstance(info, msgspec.inspect.UnionType)
            if nullable:
                others = [t for t in info.types if not isinstance(t, msgspec.inspect.NoneType)]
                if len(others) != 1 or len(info.types) != 2:
                    raise TypeError(f"unsupported union {info}")
                info = others[0]
            entry = [None, nullable, -1, -1, -1]
            index = len(nodes)
            nodes.append(entry)
            constraints = {
                name: getattr(info, name)
                for name in ("min_length", "max_length", "pattern", "gt", "lt", "multiple_of")
                if getattr(info, name, None) is not None
            }
            if isinstance(info, msgspec.inspect.IntType):
                bounds = (info.ge, info.le)
                if constraints or bounds not in ((-(2**63), 2**63 - 1), (0, None)):
                    raise TypeError(f"unsupported int {info}: Int64 or UInt64 only")
                entry[0] = W_UINT if bounds == (0, None) else W_INT
            elif constraints or getattr(info, "ge", None) is not None or getattr(info, "le", None) is not None:
                raise TypeError(f"unsupported constraints {info}")
            elif type(info) in PLAIN_KINDS:
                entry[0] = PLAIN_KINDS[type(info)]
            elif isinstance(info, msgspec.inspect.StructType):
                entry[0] = W_STRUCT
                entry[2] = shape(info)
            elif isinstance(info, msgspec.inspect.ListType):
                entry[0] = W_LIST
                entry[3] = node(info.item_type)
                item = nodes[entry[3]]
                if item[0] == W_STRUCT:
                    if item[1]:
                        raise TypeError(f"unsupported list of optional structs {info}")
                    entry[2] = item[2]
            elif isinstance(info, msgspec.inspect.DictType):
                entry[0] = W_DICT
                entry[4] = node(info.key_type)
                entry[3] = node(info.value_type)
                if nodes[entry[4]][0] not in (W_STR, W_INT) or nodes[entry[4]][1]:
                    raise TypeError(f"unsupported map keys {info}")
                if nodes[entry[3]][0] not in SCALARS:
                    raise TypeError(f"unsupported map values {info}")
            else:
                raise TypeError(f"unsupported wire type {info}")
            return index

        def shape(info):
            if info.cls in shapes:
                return shapes[info.cls]
            if info.array_like or info.tag_field is not None:
                raise TypeError(f"unsupported struct options of {info.cls}")
            if info.forbid_unknown_fields:
                raise TypeError(f"unsupported struct options of {info.cls}")
            index = shapes[info.cls] = len(struct_fields)
            struct_fields.append(None)
            declared = {f.name: f.type for f in msgspec.structs.fields(info.cls)}
            struct_fields[index] = [(f, node(f.type), declared[f.name]) for f in info.fields]
            return index

        event = msgspec.inspect.type_info(event_struct)
        if not isinstance(event, msgspec.inspect.StructType):
            raise TypeError(f"{event_struct} is not a msgspec Struct")
        self.event_shape = shape(event)
        self.nodes = <Node*>realloc(NULL, len(nodes) * sizeof(Node))
        self.shapes = <Shape*>realloc(NULL, len(struct_fields) * sizeof(Shape))
        count = sum(len(fields) for fields in struct_fields)
        self.fields = <Field*>realloc(NULL, count * sizeof(Field))
        self.lookup = <signed char*>realloc(NULL, len(struct_fields) * 256)
        if self.nodes == NULL or self.shapes == NULL or self.fields == NULL or self.lookup == NULL:
            raise MemoryError()
        memset(self.lookup, -1, len(struct_fields) * 256)
        for i, (kind, nullable, shape_index, item, key) in enumerate(nodes):
            self.nodes[i] = Node(kind, nullable, shape_index, item, key)
        first = 0
        for i, fields in enumerate(struct_fields):
            if len(fields) > 127:
                raise TypeError("a struct of more than 127 fields")
            self.shapes[i] = Shape(first, len(fields), any(f.required for f, _, _ in fields))
            for local, (info, field_node, declared_type) in enumerate(fields):
                key = info.encode_name.encode()
                at = i * 256 + key_hash(key, len(key))
                self.lookup[at] = local if self.lookup[at] == -1 else -2
                self.keys.append(key)  # keeps `Field.key` alive
                self.names.append(info.name)
                self.defaults.append(info.default)
                factory = info.default_factory
                self.factories.append(None if factory is msgspec.NODEFAULT else factory)
                self.types.append(declared_type)
                self.fields[first] = Field(
                    PyBytes_AS_STRING(key), PyBytes_GET_SIZE(key), field_node, info.required
                )
                first += 1

    def __dealloc__(self):
        free(self.nodes)
        free(self.shapes)
        free(self.fields)
        free(self.lookup)

    cdef int field_of(self, int shape, str name) except -1:
        """A struct's field, by attribute name."""
        cdef Shape found = self.shapes[shape]
        for i in range(found.first, found.first + found.count):
            if self.names[i] == name:
                return i
        raise TypeError(f"no wire field {name!r}")

    cdef object default(self, int field):
        """The value msgspec gives a field the JSON lacks."""
        factory = self.factories[field]
        return self.defaults[field] if factory is None else factory()

    cdef object decoder(self, int field):
        found = self.decoders.get(field)
        if found is None:
            found = self.decoders[field] = msgspec.json.Decoder(self.types[field], strict=False)
        return found


cdef class Table:
    """How the events of one type fill their builder: a plan per column (the event
    columns, then the row columns) and where the rows are."""

    cdef readonly str event_type
    cdef bytes event_type_utf8
    cdef Plan* plans
    cdef Path* paths
    cdef int* steps
    cdef int event_width, row_width
    cdef int payload  # the payload's slot in the event
    cdef int rows_first, rows_count  # steps from the payload to its rows; no step: one row
    cdef int row_size  # slots per row
    cdef object placeholder

    def __dealloc__(self):
        free(self.plans)
        free(self.paths)
        free(self.steps)


cdef Table plan_table(Wire wire, str event_type, TableBuilder builder):
    """A builder's specs as a Table over the wire structs. TypeError: a spec the fast
    path cannot follow (rows made by Python code, a path through something other than
    optional structs, a field of another kind than the column's)."""
    cdef Table table = Table()
    cdef int payload_field, shape, field
    cdef list plans = [], paths = [], steps = []
    if builder.payload is None or builder.rows_of is not None:
        raise TypeError(f"{event_type}: its rows are made by Python code")
    table.event_type = event_type
    table.event_type_utf8 = event_type.encode()
    payload_field = wire.field_of(wire.event_shape, builder.payload)
    table.payload = payload_field - wire.shapes[wire.event_shape].first
    payload_shape = wire.nodes[wire.fields[payload_field].node].shape
    table.placeholder = builder.placeholder
    table.rows_first = table.rows_count = table.row_size = 0
    row_shape = -1
    if builder.rows_path is not None:
        table.rows_first = len(steps)
        field = walk_fields(wire, payload_shape, builder.rows_path, steps, f"{event_type} rows")
        shape = wire.nodes[wire.fields[field].node].shape  # a list's: its items'
        if wire.nodes[wire.fields[field].node].kind != W_LIST or shape < 0:
            raise TypeError(f"{event_type}: rows {builder.rows_path} are not a list of structs")
        table.rows_count = len(builder.rows_path)
        table.row_size = wire.shapes[shape].count
        row_shape = shape
    elif builder.row_columns:
        raise TypeError(f"{event_type}: row columns without rows")
    roots = {EVENT: wire.event_shape, PAYLOAD: payload_shape, ROW: row_shape}
    for column in [*builder.event_columns, *builder.row_columns]:
        plans.append(plan_column(wire, column, roots[column.root], paths, steps))
    table.event_width = len(builder.event_columns)
    table.row_width = len(builder.row_columns)
    table.plans = <Plan*>realloc(NULL, (len(plans) + 1) * sizeof(Plan))
    table.paths = <Path*>realloc(NULL, (len(paths) + 1) * sizeof(Path))
    table.steps = <int*>realloc(NULL, (len(steps) + 1) * sizeof(int))
    if table.plans == NULL or table.paths == NULL or table.steps == NULL:
        raise MemoryError()
    for i, (mode, root, first, count) in enumerate(plans):
        table.plans[i] = Plan(mode, root, first, count)
    for i, (first, count, last, when_absent, raw) in enumerate(paths):
        table.paths[i] = Path(first, count, last, when_absent, raw)
    for i, step in enumerate(steps):
        table.steps[i] = step
    return table


cdef int walk_fields(Wire wire, int shape, tuple path, list steps, str what) except -2:
    """The last field of `path` (names of fields from struct `shape` on), each step's
    place in its struct appended to `steps`. TypeError: a step that is not into a struct,
    or through a struct that has a default (it would be absent, not null)."""
    cdef int field = -1
    cdef Node node
    for name in path:
        if shape < 0:
            raise TypeError(f"{what}: {path} is not a path through structs")
        if field >= 0 and not wire.nodes[wire.fields[field].node].nullable:
            raise TypeError(f"{what}: {path} goes through a struct default")
        field = wire.field_of(shape, name)
        steps.append(field - wire.shapes[shape].first)
        node = wire.nodes[wire.fields[field].node]
        shape = node.shape if node.kind == W_STRUCT else -1
    return field


cdef tuple plan_column(Wire wire, Column column, int root_shape, list paths, list steps):
    """(mode, root, first path, path count) of a column; its paths are appended to
    `paths` as (first step, step count, last field), their steps to `steps`."""
    cdef int field, mode
    cdef int first_path = len(paths)
    if not column.paths:
        return (M_CONSTANT, column.root, first_path, 0)
    mode = M_PYTHON if column.convert is not None or column.kind == K_OBJ else M_DIRECT
    for path in column.paths:
        first_step = len(steps)
        field = walk_fields(wire, root_shape, path, steps, column.name)
        leaf = wire.nodes[wire.fields[field].node].kind
        paths.append((first_step, len(path), field, absent(wire, column, field), leaf == W_RAW))
        if mode == M_DIRECT and leaf != DIRECT_FIELDS[column.kind]:
            raise TypeError(f"{column.name}: a field of kind {leaf} in a column of kind {column.kind}")
        if mode == M_PYTHON and column.convert is None and leaf != W_DICT:
            raise TypeError(f"{column.name}: an object column of a field other than a map")
        if leaf == W_RAW and column.convert is None:
            raise TypeError(f"{column.name}: raw JSON without a converter")
    return (mode, column.root, first_path, len(column.paths))


ZEROS = {STR: "", TIME: "", HEX: b"", HEX_RAW: b"", INT: 0, FLOAT: 0.0, BOOL: False}


cdef int absent(Wire wire, Column column, int field):
    """How a column takes the default of a field the JSON lacks: in C when it is None or
    the zero of the column's kind, which `Column.append` would store alike."""
    default = wire.defaults[field]
    if wire.factories[field] is not None or column.convert is not None or column.kind == K_OBJ:
        return A_PYTHON
    if default is None:
        return A_NULL
    zero = ZEROS[column.kind]
    if type(default) is type(zero) and default == zero:
        return A_ZERO
    return A_PYTHON


# ---------------------------------------------------------------------------------------
# One body.


cdef class Walk:
    """The state of one body's walk. For the event being walked, `slots` holds a slot
    per field of each struct met (what the JSON has for it) and `decoded` the bytes of
    its base64 strings."""

    cdef Wire wire
    cdef Slot* slots
    cdef Py_ssize_t used, capacity
    cdef unsigned char* decoded
    cdef Py_ssize_t decoded_used, decoded_capacity
    cdef Py_ssize_t index  # the event being walked

    def __cinit__(self, Wire wire):
        self.wire = wire

    def __dealloc__(self):
        free(self.slots)
        free(self.decoded)

    cdef int decline(self, str reason) except -1:
        raise Declined(f"event {self.index}: {reason}")

    cdef void restart(self) noexcept:
        """Forget the slots and bytes of the event walked before."""
        self.used = self.decoded_used = 0

    cdef Py_ssize_t alloc(self, Py_ssize_t count) except -1:
        """`count` empty slots; the index of the first."""
        cdef Py_ssize_t start = self.used, i
        cdef Slot* grown
        if start + count > self.capacity:
            self.capacity = max(2 * self.capacity, start + count, 256)
            grown = <Slot*>realloc(self.slots, self.capacity * sizeof(Slot))
            if grown == NULL:
                raise MemoryError()
            self.slots = grown
        for i in range(start, start + count):
            self.slots[i].value = NULL
            self.slots[i].data = -1
        self.used = start + count
        return start

    cdef int64_t decode(self, yyjson_val* value) except -2:
        """Decode a base64 string into `decoded`; where, or -1 when not canonical."""
        cdef size_t size = unsafe_yyjson_get_len(value)
        cdef unsigned char* grown
        cdef int64_t start = self.decoded_used
        if self.decoded_used + <Py_ssize_t>size > self.decoded_capacity:
            self.decoded_capacity = max(2 * self.decoded_capacity, self.decoded_used + size, 1024)
            grown = <unsigned char*>realloc(self.decoded, self.decoded_capacity)
            if grown == NULL:
                raise MemoryError()
            self.decoded = grown
        if unbase64(unsafe_yyjson_get_str(value), size, self.decoded + start) < 0:
            return -1
        self.decoded_used += decoded_size(value)
        return start

    # -- checking, as msgspec decodes -------------------------------------------------

    cdef int check_struct(self, yyjson_val* value, int shape, Py_ssize_t block) except -1:
        """Check an object against a struct and note its fields in the slots from
        `block` on."""
        cdef Wire wire = self.wire
        cdef Shape* found = &wire.shapes[shape]
        cdef Field* fields = wire.fields + found.first
        cdef signed char* lookup = wire.lookup + shape * 256
        cdef yyjson_val* key
        cdef yyjson_val* item
        cdef const char* name
        cdef size_t size, count, k
        cdef int local, j, unknown = 0
        cdef int64_t data
        if not yyjson_is_obj(value):
            return self.decline("expected an object")
        count = unsafe_yyjson_get_len(value)
        key = unsafe_yyjson_get_first(value)
        for k in range(count):
            item = key + 1
            name = unsafe_yyjson_get_str(key)
            size = unsafe_yyjson_get_len(key)
            local = lookup[key_hash(name, size)] if size else -1
            if local == -2:  # keys of two fields hash alike: look at each
                local = -1
                for j in range(found.count):
                    if fields[j].size == <Py_ssize_t>size and same(fields[j].key, name, size):
                        local = j
                        break
            elif local >= 0 and (
                fields[local].size != <Py_ssize_t>size or not same(fields[local].key, name, size)
            ):
                local = -1
            if local < 0:
                unknown += 1
                self.check_any(item, 1)
            else:
                if self.slots[block + local].value != NULL:
                    return self.decline(f"`{name[:size].decode()}` given twice")
                self.slots[block + local].value = item
                data = self.check(item, fields[local].node, name, size)
                self.slots[block + local].data = data  # `check` may have moved `slots`
            key = unsafe_yyjson_get_next(item)
        if unknown > 1:
            self.check_unique(value)
        if found.required:
            for j in range(found.count):
                if fields[j].required and self.slots[block + j].value == NULL:
                    return self.decline(f"`{fields[j].key[:fields[j].size].decode()}` missing")
        return 0

    cdef int64_t check(self, yyjson_val* value, int node_index, const char* name, size_t size) except? -2:
        """Check a field's value; its slot's `data`."""
        cdef Node* node = &self.wire.nodes[node_index]
        cdef Py_ssize_t block, row_size, k, count
        cdef yyjson_val* item
        cdef int64_t number
        cdef double real
        if node.kind == W_RAW:  # any JSON, null too
            self.check_any(value, 1)
            return -1
        if yyjson_is_null(value):
            if node.nullable:
                return -1
            self.decline(f"`{name[:size].decode()}`: null")
        if node.kind == W_STR:
            if not yyjson_is_str(value):
                self.decline(f"`{name[:size].decode()}`: expected a string")
        elif node.kind == W_BYTES:
            number = self.decode(value) if yyjson_is_str(value) else -1
            if number < 0:
                self.decline(f"`{name[:size].decode()}`: expected canonical base64")
            return number
        elif node.kind == W_INT or node.kind == W_UINT:
            if not int_of(value, node.kind, &number):
                self.decline(f"`{name[:size].decode()}`: expected a canonical integer in range")
            return number
        elif node.kind == W_BOOL:
            if not yyjson_is_bool(value):
                self.decline(f"`{name[:size].decode()}`: expected true or false")
        elif node.kind == W_FLOAT:
            if not float_of(value, &real):
                self.decline(f"`{name[:size].decode()}`: expected a plain float")
        elif node.kind == W_STRUCT:
            block = self.alloc(self.wire.shapes[node.shape].count)
            self.check_struct(value, node.shape, block)
            return block
        elif node.kind == W_LIST:
            if not yyjson_is_arr(value):
                self.decline(f"`{name[:size].decode()}`: expected an array")
            count = unsafe_yyjson_get_len(value)
            item = unsafe_yyjson_get_first(value)
            if node.shape >= 0:  # the structs' slots one after the other, for the rows
                row_size = self.wire.shapes[node.shape].count
                block = self.alloc(count * row_size)
                for k in range(count):
                    self.check_struct(item, node.shape, block + k * row_size)
                    item = unsafe_yyjson_get_next(item)
                return block
            for k in range(count):
                self.check(item, node.item, name, size)
                item = unsafe_yyjson_get_next(item)
        else:  # W_DICT
            self.check_map(value, node, name, size)
        return -1

    cdef int check_map(self, yyjson_val* value, Node* node, const char* name, size_t size) except -1:
        cdef yyjson_val* key
        cdef int64_t number
        cdef size_t k
        if not yyjson_is_obj(value):
            return self.decline(f"`{name[:size].decode()}`: expected an object")
        self.check_unique(value)
        key = unsafe_yyjson_get_first(value)
        for k in range(unsafe_yyjson_get_len(value)):
            if self.wire.nodes[node.key].kind == W_INT and not int_of(key, W_INT, &number):
                self.decline(f"`{name[:size].decode()}`: expected integer keys")
            self.check(key + 1, node.item, name, size)
            key = unsafe_yyjson_get_next(key + 1)
        return 0

    cdef int check_any(self, yyjson_val* value, int depth) except -1:
        """Any JSON msgspec skips or keeps raw: not too deep, no duplicate keys, no
        number beyond int64, uint64 or a finite double."""
        cdef yyjson_val* item
        cdef size_t k, count
        if depth > MAX_DEPTH:
            return self.decline("JSON nested too deep")
        if yyjson_is_raw(value):
            return self.decline("a number out of range")
        if yyjson_is_arr(value):
            item = unsafe_yyjson_get_first(value)
            for k in range(unsafe_yyjson_get_len(value)):
                self.check_any(item, depth + 1)
                item = unsafe_yyjson_get_next(item)
        elif yyjson_is_obj(value):
            self.check_unique(value)
            item = unsafe_yyjson_get_first(value)
            for k in range(unsafe_yyjson_get_len(value)):
                self.check_any(item + 1, depth + 1)
                item = unsafe_yyjson_get_next(item + 1)
        return 0

    cdef int check_unique(self, yyjson_val* value) except -1:
        """No key twice in an object (msgspec would keep the last)."""
        cdef size_t count = unsafe_yyjson_get_len(value), i, j
        cdef yyjson_val* a
        cdef yyjson_val* b
        cdef set keys
        if count < 2:
            return 0
        if count > <size_t>PAIRWISE:
            keys = set()
            a = unsafe_yyjson_get_first(value)
            for i in range(count):
                keys.add(unsafe_yyjson_get_str(a)[:unsafe_yyjson_get_len(a)])
                a = unsafe_yyjson_get_next(a + 1)
            if len(keys) < count:
                return self.decline("a key given twice")
            return 0
        a = unsafe_yyjson_get_first(value)
        for i in range(count):
            b = unsafe_yyjson_get_next(a + 1)
            for j in range(i + 1, count):
                if unsafe_yyjson_get_len(a) == unsafe_yyjson_get_len(b) and memcmp(
                    unsafe_yyjson_get_str(a), unsafe_yyjson_get_str(b), unsafe_yyjson_get_len(a)
                ) == 0:
                    return self.decline("a key given twice")
                b = unsafe_yyjson_get_next(b + 1)
            a = unsafe_yyjson_get_next(a + 1)
        return 0

    # -- filling ------------------------------------------------------------------------

    cdef void reach(
        self, Table table, Plan* plan, Py_ssize_t event, Py_ssize_t payload, Py_ssize_t row,
        Found* found,
    ) noexcept:
        """What a column's paths reach: the first alternative that reaches its last
        step, as `Column.value_of` walks the decoded structs."""
        cdef Py_ssize_t block, start
        cdef Path* path
        cdef Slot* slot
        cdef int p, s
        start = event if plan.root == R_EVENT else payload if plan.root == R_PAYLOAD else row
        for p in range(plan.first, plan.first + plan.count):
            path = &table.paths[p]
            block = start
            for s in range(path.first, path.first + path.count - 1):
                slot = &self.slots[block + table.steps[s]]
                if slot.value == NULL or yyjson_is_null(slot.value):
                    block = -1
                    break
                block = slot.data
            if block < 0:
                continue
            slot = &self.slots[block + table.steps[path.first + path.count - 1]]
            found.value = slot.value
            found.data = slot.data
            found.field = path.field
            if slot.value == NULL:
                found.found, found.absent = F_ABSENT, path.absent
            elif yyjson_is_null(slot.value) and not path.raw:
                found.found, found.absent = F_NULL, A_NULL
            else:
                found.found, found.absent = F_VALUE, A_PYTHON
            return
        found.found = F_MISSING

    cdef object python(self, Column column, Found* found):
        """The Python value the exact path would give a column (before its converter)."""
        if found.found == F_MISSING:
            return column.default
        if found.found == F_ABSENT:
            return self.wire.default(found.field)
        if found.found == F_NULL:
            return None
        return self.python_field(found.value, found.field)

    cdef object python_field(self, yyjson_val* value, int field):
        cdef Node* node = &self.wire.nodes[self.wire.fields[field].node]
        cdef dict mapping
        cdef yyjson_val* key
        cdef size_t k
        if node.kind == W_DICT:
            mapping = {}
            key = unsafe_yyjson_get_first(value)
            for k in range(unsafe_yyjson_get_len(value)):
                mapping[self.scalar(key, node.key)] = self.scalar(key + 1, node.item)
                key = unsafe_yyjson_get_next(key + 1)
            return mapping
        if node.kind == W_RAW:
            return msgspec.Raw(written(value))
        if node.kind == W_STRUCT or node.kind == W_LIST:
            return self.wire.decoder(field).decode(written(value))
        return self.scalar(value, self.wire.fields[field].node)

    cdef object scalar(self, yyjson_val* value, int node_index):
        cdef int kind = self.wire.nodes[node_index].kind
        cdef int64_t number = 0
        cdef double real = 0.0
        if yyjson_is_null(value):
            return None
        if kind == W_STR:
            return PyUnicode_DecodeUTF8(
                unsafe_yyjson_get_str(value), unsafe_yyjson_get_len(value), NULL
            )
        if kind == W_BYTES:
            number = self.decode(value)
            return PyBytes_FromStringAndSize(<char*>self.decoded + number, decoded_size(value))
        if kind == W_BOOL:
            return yyjson_is_true(value)
        if kind == W_FLOAT:
            float_of(value, &real)
            return real
        int_of(value, kind, &number)
        return <uint64_t>number if kind == W_UINT else number

    cdef int put(self, Column column, int mode, Found* found) except -1:
        """Append what a column's paths reached: in C for an M_DIRECT column, else as
        the Python value the exact path would append; 1 for a time not in Ray's form."""
        cdef double real
        cdef int kind = column.kind
        if mode != M_DIRECT or found.found == F_MISSING:
            return column.append(self.python(column, found))
        if found.found == F_VALUE:
            if kind == K_STR:
                return add_text(
                    column, unsafe_yyjson_get_str(found.value), unsafe_yyjson_get_len(found.value)
                )
            if kind == K_TIME:
                return add_ray_time(
                    column, unsafe_yyjson_get_str(found.value), unsafe_yyjson_get_len(found.value)
                )
            if kind == K_HEX or kind == K_HEX_RAW:
                return add_hex(column, self.decoded + found.data, decoded_size(found.value))
            if kind == K_INT:
                return add_int(column, found.data)
            if kind == K_FLOAT:
                float_of(found.value, &real)
                return add_float(column, real)
            return add_bool(column, yyjson_is_true(found.value))
        if found.absent == A_NULL:  # F_NULL too
            return add_null(column)
        if found.absent == A_PYTHON:
            return column.append(self.wire.default(found.field))
        if kind == K_STR:  # A_ZERO
            return add_text(column, "", 0)
        if kind == K_TIME:
            return add_ray_time(column, "", 0)
        if kind == K_HEX or kind == K_HEX_RAW:
            return add_hex(column, NULL, 0)
        if kind == K_INT:
            return add_int(column, 0)
        if kind == K_FLOAT:
            return add_float(column, 0.0)
        return add_bool(column, False)

    cdef int add(self, Table table, TableBuilder builder, Py_ssize_t event) except -1:
        """Append an event's rows to a builder, as `TableBuilder.add` does: the event's
        own values on each of its rows. 1 when a time among them is not in Ray's
        form."""
        cdef Py_ssize_t payload = self.slots[event + table.payload].data
        cdef Py_ssize_t row = -1, rows = 1, r, block = payload
        cdef int i, s, odd_time = 0
        cdef bint placeholder = False
        cdef Slot* slot
        cdef Column column
        cdef Found found
        cdef list event_columns = builder.event_columns, row_columns = builder.row_columns
        if table.rows_count:
            for s in range(table.rows_first, table.rows_first + table.rows_count):
                slot = &self.slots[block + table.steps[s]]
                if slot.value == NULL or yyjson_is_null(slot.value):
                    block = -1
                    break
                block = slot.data
            rows = 0 if block < 0 else unsafe_yyjson_get_len(slot.value)
            row = block
            if rows == 0 and table.placeholder is not None:
                rows, placeholder = 1, True
        if rows:
            for i in range(table.event_width):
                column = <Column>event_columns[i]
                self.reach(table, &table.plans[i], event, payload, -1, &found)
                odd_time |= self.put(column, table.plans[i].mode, &found)
                if rows > 1:
                    column.repeat(rows - 1)
        for r in range(rows):
            for i in range(table.row_width):
                column = <Column>row_columns[i]
                if placeholder:
                    odd_time |= column.append(column.value_of(table.placeholder))
                    continue
                self.reach(
                    table, &table.plans[table.event_width + i], event, payload,
                    row + r * table.row_size, &found,
                )
                odd_time |= self.put(column, table.plans[table.event_width + i].mode, &found)
        builder.end_event(<int>rows)
        return odd_time


# ---------------------------------------------------------------------------------------


cdef enum:
    MAX_TABLES = 64  # event types the fast path fills, at most (for the counts per type)


# A body up to this size is parsed into memory kept from the body before (the DOM of
# one is twice or three times its size): memory the kernel maps afresh for every body
# cost a sixth of the collector's page faults. A larger body's is given back.
cdef size_t REUSED_DOM_MAX_BODY = 2 << 20


cdef class JsonFill:
    """The fast path for one field naming: `take` a body's events into builders."""

    cdef Wire wire
    cdef list tables  # a Table per event type the fast path fills
    cdef readonly dict unsupported  # event type -> why the fast path leaves it
    cdef int event_id, event_type, session_name, node_id  # their slots in the event
    cdef yyjson_alc* reused  # keeps the memory of the DOMs it made, for the next
    cdef bint reused_busy  # a thread is parsing with it (set and read with the GIL)

    def __cinit__(self):
        self.reused = yyjson_alc_dyn_new()
        if self.reused == NULL:
            raise MemoryError()

    def __dealloc__(self):
        yyjson_alc_dyn_free(self.reused)

    def __init__(self, event_struct, dict builders):
        """`event_struct`: the wire RayEvent struct; `builders`: an empty builder per
        event type (as `ingest.normalize` specifies them)."""
        self.wire = Wire(event_struct)
        self.tables = []
        self.unsupported = {}
        for event_type, builder in builders.items():
            try:
                self.tables.append(plan_table(self.wire, event_type, builder))
            except TypeError as exc:
                self.unsupported[event_type] = str(exc)
        if len(self.tables) > MAX_TABLES:
            raise TypeError(f"more than {MAX_TABLES} event types")
        first = self.wire.shapes[self.wire.event_shape].first
        self.event_id = self.wire.field_of(self.wire.event_shape, "event_id") - first
        self.event_type = self.wire.field_of(self.wire.event_shape, "event_type") - first
        self.session_name = self.wire.field_of(self.wire.event_shape, "session_name") - first
        self.node_id = self.wire.field_of(self.wire.event_shape, "node_id") - first

    def take(self, bytes body, EventIds seen, dict builders):
        """Validate a body and add its rows: an event whose id is in `seen` is checked
        and dropped, as `fill` does. Returns (events, new ids packed, events per type,
        first session, emitter, sessions); the new ids are added to `seen`. Raises
        Declined, and then `builders` and `seen` are as they were."""
        cdef yyjson_read_err error
        cdef yyjson_doc* doc
        cdef const char* data = PyBytes_AS_STRING(body)
        cdef size_t size = PyBytes_GET_SIZE(body)
        cdef yyjson_alc* memory = NULL  # malloc's
        if size <= REUSED_DOM_MAX_BODY and not self.reused_busy:
            memory = self.reused
            self.reused_busy = True
        try:
            with nogil:
                doc = yyjson_read_opts(
                    <char*>data, size, YYJSON_READ_BIGNUM_AS_RAW, memory, &error
                )
            if doc == NULL:
                raise Declined(f"JSON: {error.msg.decode()} at byte {error.pos}")
            try:
                return self.walk(yyjson_doc_get_root(doc), seen, builders)
            finally:
                yyjson_doc_free(doc)
        finally:
            if memory != NULL:
                self.reused_busy = False

    cdef int find(self, yyjson_val* event_type, int last) except -2:
        """The Table of an event type, looked for from the last one found on."""
        cdef const char* text = unsafe_yyjson_get_str(event_type)
        cdef size_t size = unsafe_yyjson_get_len(event_type)
        cdef Py_ssize_t count = len(self.tables), n, t = last
        cdef Table table
        for n in range(count):
            table = <Table>self.tables[t]
            if <size_t>len(table.event_type_utf8) == size and same(
                <const char*>table.event_type_utf8, text, size
            ):
                return t
            t = t + 1 if t + 1 < count else 0
        return -1

    cdef tuple walk(self, yyjson_val* root, EventIds seen, dict builders):
        cdef Walk walk = Walk(self.wire)
        cdef Table table
        cdef Py_ssize_t count, index, event, size
        cdef int t = 0, types = 0
        cdef yyjson_val* value
        cdef yyjson_val* item
        cdef const char* text
        cdef const char* last_session = NULL
        cdef size_t text_size, last_session_size = 0
        cdef int event_size = self.wire.shapes[self.wire.event_shape].count
        cdef Py_ssize_t[MAX_TABLES] counts
        cdef int[MAX_TABLES] order
        cdef set sessions = set()
        cdef str first_session = "", emitter = ""
        cdef uint32_t id_hash
        cdef TableBuilder target
        cdef Py_ssize_t ids_mark = seen.added, id_at, target_events, target_rows
        if not yyjson_is_arr(root):
            raise Declined("not a JSON array")
        memset(counts, 0, sizeof(counts))
        targets = [builders[(<Table>spec).event_type] for spec in self.tables]
        marks = [((<TableBuilder>b).events, (<TableBuilder>b).rows) for b in targets]
        count = unsafe_yyjson_get_len(root)
        item = unsafe_yyjson_get_first(root)
        try:
            for index in range(count):
                walk.index = index
                walk.restart()
                event = walk.alloc(event_size)
                walk.check_struct(item, self.wire.event_shape, event)
                t = self.find(walk.slots[event + self.event_type].value, t)
                if t < 0:
                    value = walk.slots[event + self.event_type].value
                    text, text_size = unsafe_yyjson_get_str(value), unsafe_yyjson_get_len(value)
                    walk.decline(f"event type {text[:text_size].decode()!r} has no fast path")
                table = <Table>self.tables[t]
                # What parse_body refuses after decoding (`first_incomplete`, sessions):
                value = walk.slots[event + self.event_id].value
                size = decoded_size(value)
                if size == 0:
                    walk.decline("an empty event id")
                id_at = walk.slots[event + self.event_id].data
                id_hash = seen.prefetch(walk.decoded + id_at, size)
                value = walk.slots[event + self.session_name].value
                if value == NULL or unsafe_yyjson_get_len(value) == 0:
                    walk.decline("no session name")
                text, text_size = unsafe_yyjson_get_str(value), unsafe_yyjson_get_len(value)
                if text_size != last_session_size or not same(text, last_session, text_size):
                    session = text[:text_size].decode()
                    if session not in sessions:
                        try:
                            check_session(session)
                        except LayoutError:
                            walk.decline("a session name the lake refuses")
                        sessions.add(session)
                    if index == 0:
                        first_session = session
                    last_session, last_session_size = text, text_size
                value = walk.slots[event + table.payload].value
                if value == NULL or yyjson_is_null(value):
                    walk.decline(f"no payload for {table.event_type}")
                # Added before its id is looked up (the lookup's memory is fetched
                # meanwhile); a repeat, so checked, is then taken back.
                target = <TableBuilder>targets[t]
                target_events, target_rows = target.events, target.rows
                if walk.add(table, target, event):
                    walk.decline("a time not in Ray's own form")
                if not seen.add_id(walk.decoded + id_at, size, id_hash):
                    target.rollback((target_events, target_rows))
                if counts[t] == 0:
                    order[types] = t
                    types += 1
                counts[t] += 1
                if not emitter:
                    value = walk.slots[event + self.node_id].value
                    if value != NULL and decoded_size(value):
                        emitter = PyBytes_FromStringAndSize(
                            <char*>walk.decoded + walk.slots[event + self.node_id].data,
                            decoded_size(value),
                        ).hex()
                item = unsafe_yyjson_get_next(item)
        except BaseException as exc:
            seen.rollback(ids_mark)
            for builder, mark in zip(targets, marks):
                (<TableBuilder>builder).rollback(mark)
            # A converter's (LayoutError is caught) or a column's bound: the exact path
            # names the event and field.
            if isinstance(exc, (ValueError, OverflowError)):
                raise Declined(f"event {walk.index}: a value was refused: {exc}") from None
            raise
        by_type = {(<Table>self.tables[order[i]]).event_type: counts[order[i]] for i in range(types)}
        return (count, seen.since(ids_mark), by_type, first_session, emitter, sessions)
