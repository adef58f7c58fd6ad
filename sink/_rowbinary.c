/* The sink's fast path in C: Avro records -> ClickHouse RowBinary, driven by a program compiled
 * from the writer schema (sink/rowbinary.py says how and why).
 *
 * Why: ClickHouse parsing the Avro container itself cost ~3.3-4.1 us a row (its Avro reader
 * goes through avro-cpp's generic datums), the largest single share of an insert, while its
 * RowBinary reader takes ~1.8 (bench/RESULTS.md). The two encodings are close: a varint becomes
 * a fixed-width integer, a zigzag length an unsigned one, a union index a null flag or a Variant
 * discriminator, and an Avro array's blocks one count. Here that costs well under a microsecond
 * a row.
 *
 * Safety: every read is bounds-checked, and anything the program cannot follow (a truncated
 * record, a union branch or enum index out of range, a boolean that is not 0 or 1, an int out of
 * range, trailing bytes) refuses the whole body with ValueError, which the sink treats exactly as
 * ClickHouse refusing the container: the range is redone in Python, which says why per record.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "_avro_long.h"

/* Must match sink/rowbinary.py */
enum { OP_STRING, OP_LONG, OP_INT, OP_FLOAT, OP_DOUBLE, OP_BOOL, OP_FIXED, OP_ENUM8, OP_ENUM16,
       OP_NULLABLE, OP_VARIANT, OP_RECORD, OP_ARRAY, OP_MAP, OP_NULL };
#define MAX_DEPTH 64

typedef struct { int op, a, b; } Instr;

typedef struct {
    PyObject_HEAD
    Instr *code;          /* every body's instructions, back to back */
    Py_ssize_t *start;    /* body i: code[start[i]] .. code[start[i] + len[i]] */
    Py_ssize_t *len;
    Py_ssize_t nbodies;
    int *disc;            /* variant discriminator tables, back to back (-1: NULL -> 255) */
    Py_ssize_t ndisc;
    int top;
    int ready;
} Program;

typedef struct {
    const unsigned char *p, *end;
    unsigned char *out;
    Py_ssize_t n, cap;
    const char *why;     /* set on refusal */
} Cur;

#define HOT static inline __attribute__((always_inline))

static int grow_slow(Cur *c, Py_ssize_t need) {
    Py_ssize_t cap = c->cap * 2;
    if (cap < c->n + need) cap = c->n + need + 1024;
    unsigned char *o = realloc(c->out, (size_t)cap);  /* plain malloc: runs without the GIL */
    if (!o) return -1;
    c->out = o; c->cap = cap;
    return 0;
}

HOT int grow(Cur *c, Py_ssize_t need) {
    return c->n + need <= c->cap ? 0 : grow_slow(c, need);
}

#define REFUSE(c, msg) do { (c)->why = (msg); return 1; } while (0)

HOT int read_long(Cur *c, int64_t *v) {
    const char *why = avro_long(&c->p, c->end, v);
    if (why) REFUSE(c, why);
    return 0;
}

HOT int put_varuint(Cur *c, uint64_t x) {
    if (grow(c, 10)) return -1;
    while (x >= 0x80) { c->out[c->n++] = (unsigned char)(x | 0x80); x >>= 7; }
    c->out[c->n++] = (unsigned char)x;
    return 0;
}

HOT int put(Cur *c, const void *src, Py_ssize_t k) {
    if (grow(c, k)) return -1;
    memcpy(c->out + c->n, src, (size_t)k);
    c->n += k;
    return 0;
}

/* constant sizes: the compiler makes these single stores */
#define PUTN(c, src, k) (grow((c), (k)) ? -1 : (memcpy((c)->out + (c)->n, (src), (k)), (c)->n += (k), 0))

static int run_body(Program *pg, Cur *c, int body, int depth);

/* returns 0 ok, 1 refused (c->why), -1 out of memory */
static int run_instr(Program *pg, Cur *c, const Instr *in, int depth) {
    int64_t v;
    int r;
    if (depth > MAX_DEPTH) REFUSE(c, "schema nested too deeply");
    switch (in->op) {
    case OP_STRING:
        if ((r = read_long(c, &v))) return r;
        if (v < 0 || v > c->end - c->p) REFUSE(c, "string length out of range");
        if (put_varuint(c, (uint64_t)v) || put(c, c->p, (Py_ssize_t)v)) return -1;
        c->p += v;
        return 0;
    case OP_LONG:
        if ((r = read_long(c, &v))) return r;
        return PUTN(c, &v, 8);  /* x86-64 and aarch64 are little-endian, as RowBinary */
    case OP_INT: {
        if ((r = read_long(c, &v))) return r;
        if (v < INT32_MIN || v > INT32_MAX) REFUSE(c, "int out of range");
        int32_t i = (int32_t)v;
        return PUTN(c, &i, 4);
    }
    case OP_FLOAT:
    case OP_DOUBLE: {
        Py_ssize_t k = in->op == OP_FLOAT ? 4 : 8;
        if (c->end - c->p < k) REFUSE(c, "record truncated in a float");
        if (k == 8 ? PUTN(c, c->p, 8) : PUTN(c, c->p, 4)) return -1;
        c->p += k;
        return 0;
    }
    case OP_BOOL:
        if (c->p >= c->end) REFUSE(c, "record truncated in a boolean");
        if (*c->p > 1) REFUSE(c, "boolean byte is not 0 or 1");
        if (PUTN(c, c->p, 1)) return -1;
        c->p++;
        return 0;
    case OP_FIXED:
        if (c->end - c->p < in->a) REFUSE(c, "record truncated in a fixed");
        if (put(c, c->p, in->a)) return -1;
        c->p += in->a;
        return 0;
    case OP_ENUM8:
    case OP_ENUM16: {
        if ((r = read_long(c, &v))) return r;
        if (v < 0 || v >= in->a) REFUSE(c, "enum index out of range");
        if (in->op == OP_ENUM8) { int8_t e = (int8_t)v; return PUTN(c, &e, 1); }
        int16_t e = (int16_t)v;
        return PUTN(c, &e, 2);
    }
    case OP_NULLABLE: {  /* a = the null branch (0 or 1), b = body of the value */
        if ((r = read_long(c, &v))) return r;
        if (v != 0 && v != 1) REFUSE(c, "union branch out of range");
        unsigned char flag = v == in->a;
        if (PUTN(c, &flag, 1)) return -1;
        return flag ? 0 : run_body(pg, c, in->b, depth + 1);
    }
    case OP_VARIANT: {  /* a = body whose instruction j reads branch j, b = offset in disc */
        if ((r = read_long(c, &v))) return r;
        if (v < 0 || v >= pg->len[in->a]) REFUSE(c, "union branch out of range");
        int d = pg->disc[in->b + v];
        unsigned char db = d < 0 ? 255 : (unsigned char)d;
        if (PUTN(c, &db, 1)) return -1;
        return run_instr(pg, c, &pg->code[pg->start[in->a] + v], depth + 1);
    }
    case OP_RECORD:
        return run_body(pg, c, in->a, depth + 1);
    case OP_ARRAY:
    case OP_MAP: {  /* a = body of one instruction: the item, or the map's value */
        /* the count goes before the items, and Avro's blocks only say it as they come: one
           byte is kept for it (a count under 128, the common case), and the items are moved
           up only when it needs more */
        if (grow(c, 1)) return -1;
        Py_ssize_t at = c->n++;
        uint64_t total = 0;
        for (;;) {
            if ((r = read_long(c, &v))) return r;
            if (v == 0) break;
            if (v < 0) {
                int64_t size;
                if (v == INT64_MIN) REFUSE(c, "block count out of range");
                v = -v;
                if ((r = read_long(c, &size))) return r;
                if (size < 0 || size > c->end - c->p) REFUSE(c, "block size out of range");
            }
            /* every item holds at least one byte (rowbinary.py refuses empty item types), so a
               count past the bytes left is a corrupt record, not a long wait */
            if (v > c->end - c->p) REFUSE(c, "block count past the end of the record");
            total += (uint64_t)v;
            for (int64_t i = 0; i < v; i++) {
                if (in->op == OP_MAP) {
                    Instr key = {OP_STRING, 0, 0};
                    if ((r = run_instr(pg, c, &key, depth + 1))) return r;
                }
                if ((r = run_body(pg, c, in->a, depth + 1))) return r;
            }
        }
        if (total < 0x80) {
            c->out[at] = (unsigned char)total;
            return 0;
        }
        unsigned char tmp[10];
        int k = 0;
        uint64_t x = total;
        while (x >= 0x80) { tmp[k++] = (unsigned char)(x | 0x80); x >>= 7; }
        tmp[k++] = (unsigned char)x;
        if (grow(c, k - 1)) return -1;
        memmove(c->out + at + k, c->out + at + 1, (size_t)(c->n - at - 1));
        memcpy(c->out + at, tmp, (size_t)k);
        c->n += k - 1;
        return 0;
    }
    case OP_NULL:
        return 0;
    }
    REFUSE(c, "unknown instruction");
}

static int run_body(Program *pg, Cur *c, int body, int depth) {
    const Instr *in = pg->code + pg->start[body];
    for (Py_ssize_t i = 0; i < pg->len[body]; i++) {
        int r = run_instr(pg, c, in + i, depth);
        if (r) return r;
    }
    return 0;
}

static void Program_dealloc(Program *self) {
    PyMem_Free(self->code);
    PyMem_Free(self->start);
    PyMem_Free(self->len);
    PyMem_Free(self->disc);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Program(bodies, discs, top): bodies = tuple of tuples of (op, a, b); discs = tuple of ints */
static int Program_init(Program *self, PyObject *args, PyObject *kw) {
    (void)kw;
    PyObject *bodies, *discs;
    int top;
    if (!PyArg_ParseTuple(args, "O!O!i", &PyTuple_Type, &bodies, &PyTuple_Type, &discs, &top)) return -1;
    if (self->ready) { PyErr_SetString(PyExc_RuntimeError, "Program is immutable"); return -1; }
    Py_ssize_t nb = PyTuple_GET_SIZE(bodies), total = 0;
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyObject *b = PyTuple_GET_ITEM(bodies, i);
        if (!PyTuple_Check(b)) { PyErr_SetString(PyExc_TypeError, "a body is a tuple"); return -1; }
        total += PyTuple_GET_SIZE(b);
    }
    if (top < 0 || top >= nb) { PyErr_SetString(PyExc_ValueError, "top body out of range"); return -1; }
    Py_ssize_t nd = PyTuple_GET_SIZE(discs);
    self->code = PyMem_Calloc((size_t)(total + 1), sizeof(Instr));
    self->start = PyMem_Calloc((size_t)nb, sizeof(Py_ssize_t));
    self->len = PyMem_Calloc((size_t)nb, sizeof(Py_ssize_t));
    self->disc = PyMem_Calloc((size_t)(nd + 1), sizeof(int));
    if (!self->code || !self->start || !self->len || !self->disc) { PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < nd; i++) {
        long d = PyLong_AsLong(PyTuple_GET_ITEM(discs, i));
        if (d == -1 && PyErr_Occurred()) return -1;
        if (d < -1 || d > 254) { PyErr_SetString(PyExc_ValueError, "discriminator out of range"); return -1; }
        self->disc[i] = (int)d;
    }
    Py_ssize_t k = 0;
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyObject *b = PyTuple_GET_ITEM(bodies, i);
        self->start[i] = k;
        self->len[i] = PyTuple_GET_SIZE(b);
        for (Py_ssize_t j = 0; j < self->len[i]; j++, k++) {
            Instr *in = &self->code[k];
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(b, j), "iii", &in->op, &in->a, &in->b)) return -1;
            int bad = in->op < OP_STRING || in->op > OP_NULL
                || ((in->op == OP_RECORD || in->op == OP_ARRAY || in->op == OP_MAP || in->op == OP_VARIANT)
                    && (in->a < 0 || in->a >= nb))
                || (in->op == OP_NULLABLE && (in->b < 0 || in->b >= nb || (in->a != 0 && in->a != 1)))
                || (in->op == OP_FIXED && in->a < 0)
                || ((in->op == OP_ENUM8 || in->op == OP_ENUM16) && in->a <= 0);
            if (bad) { PyErr_SetString(PyExc_ValueError, "malformed instruction"); return -1; }
        }
    }
    /* a variant's discriminator table must cover every branch of its body */
    for (Py_ssize_t i = 0; i < total; i++) {
        Instr *in = &self->code[i];
        if (in->op == OP_VARIANT && (in->b < 0 || in->b + self->len[in->a] > nd)) {
            PyErr_SetString(PyExc_ValueError, "variant table out of range");
            return -1;
        }
    }
    self->nbodies = nb;
    self->ndisc = nd;
    self->top = top;
    self->ready = 1;
    return 0;
}

/* transcode(body: bytes, count: int) -> bytes: ``count`` records back to back, each read
   with the top body; every byte must be read. Raises ValueError saying which record and why. */
static PyObject *Program_transcode(Program *self, PyObject *args) {
    PyObject *body;
    Py_ssize_t count;
    if (!self->ready) { PyErr_SetString(PyExc_RuntimeError, "Program not initialised"); return NULL; }
    if (!PyArg_ParseTuple(args, "O!n", &PyBytes_Type, &body, &count)) return NULL;
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(body);
    Py_ssize_t inlen = PyBytes_GET_SIZE(body);
    Cur c = {in, in + inlen, NULL, 0, 0, NULL};
    c.cap = inlen + inlen / 4 + 64;
    PyObject *res = NULL;
    int r = 0;
    Py_ssize_t i = 0;
    /* the input is an immutable bytes object and the program is immutable once built: the
       sink's reader thread (and the API's) can run meanwhile */
    Py_BEGIN_ALLOW_THREADS
    c.out = malloc((size_t)c.cap);
    if (!c.out) r = -1;
    for (; r == 0 && i < count; i++) {
        r = run_body(self, &c, self->top, 0);
        if (r) break;
    }
    Py_END_ALLOW_THREADS
    if (r < 0) PyErr_NoMemory();
    else if (r > 0) PyErr_Format(PyExc_ValueError, "record %zd of %zd: %s", i, count, c.why);
    else if (c.p != c.end)
        PyErr_Format(PyExc_ValueError, "%zd bytes left after %zd records", (Py_ssize_t)(c.end - c.p), count);
    else
        res = PyBytes_FromStringAndSize((const char *)c.out, c.n);
    free(c.out);
    return res;
}

static PyMethodDef Program_methods[] = {
    {"transcode", (PyCFunction)Program_transcode, METH_VARARGS,
     "transcode(body, count) -> bytes: count Avro records as RowBinary rows; ValueError if malformed"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ProgramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agentstream.sink._rowbinary.Program",
    .tp_basicsize = sizeof(Program),
    .tp_dealloc = (destructor)Program_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled Avro -> RowBinary program (sink/rowbinary.py)",
    .tp_methods = Program_methods,
    .tp_init = (initproc)Program_init,
    .tp_new = PyType_GenericNew,
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_rowbinary", NULL, -1, NULL};

PyMODINIT_FUNC PyInit__rowbinary(void) {
    if (PyType_Ready(&ProgramType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (!m) return NULL;
    Py_INCREF(&ProgramType);
    if (PyModule_AddObject(m, "Program", (PyObject *)&ProgramType) < 0) {
        Py_DECREF(&ProgramType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
