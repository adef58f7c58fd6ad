/* The processors' field reader in C: runs a _fieldreader_ops program over an Avro record.
 *
 * Why C: the detectors need a dozen fields of each raw event. fastavro decodes all ~40 of them
 * (~28 us per SDK event on this machine) and the generated Python reader that replaced it still
 * cost ~16 us, most of it interpreter overhead per field. Here a skipped field costs a varint
 * and a bounds check (a string: also a UTF-8 check, so a record the full decode would refuse is
 * refused here too), and only the selected fields become Python objects.
 *
 * The program is compiled from the writer schema in Python (_fieldreader_ops.py) and copied
 * into a flat C array once; a schema change needs no change here. The semantics are exactly
 * those of _fieldreader_py.py (the reference and the fallback when this module is not built):
 * the same dict for every record, None for the same records. Refusing is always safe: the
 * caller then takes the full fastavro decode, which DLQs what it cannot read.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

enum { OP_NULL, OP_BOOL, OP_LONG, OP_FLOAT, OP_DOUBLE, OP_BYTES, OP_STRING, OP_FIXED, OP_ENUM,
       OP_RECORD, OP_UNION, OP_ARRAY, OP_MAP, OP_MARK, OP_DEFAULT, OP_TEXT_MARK };
enum { FRESH_DICT = 1, FRESH_LIST = 2 };
#define MAX_DEPTH 64
#define REFUSED 1 /* not readable here: no Python error set */
#define FAILED 2  /* a Python error is set (memory) */

#include "_fieldreader_text.h"

typedef struct { int op, key, a, b; } Instr;

typedef struct {
    PyObject_HEAD
    Instr *code;           /* every body's instructions, back to back */
    Py_ssize_t *start;     /* body i: code[start[i]] .. code[start[i] + len[i]] */
    Py_ssize_t *len;
    Py_ssize_t nbodies;
    PyObject *names;       /* tuple of str (interned) */
    PyObject *consts;      /* tuple */
    int top;
    int ready;             /* set by a successful __init__; read() refuses to run before */
} Reader;

typedef struct {
    const unsigned char *base, *p, *end;
    Py_ssize_t mark;
    Text *text;  /* NULL: no text collected */
} Cursor;

/* A string value read at ``at``: into the text unless it is a UUID; ``id``: of an id field. */
static int text_value(Cursor *c, const unsigned char *at, Py_ssize_t n, int id) {
    Text *t = c->text;
    if (n > t->longest) t->longest = n;
    return is_uuid(at, n) ? 0 : text_add(t, at, n, id);
}

static int read_long(Cursor *c, int64_t *out) {
    uint64_t v = 0;
    int shift = 0;
    for (;;) {
        if (c->p >= c->end) return REFUSED;
        unsigned char b = *c->p++;
        if (shift == 63 && (b & 0xFE)) return REFUSED; /* beyond 64 bits */
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) break;
        shift += 7;
    }
    *out = (int64_t)((v >> 1) ^ (~(v & 1) + 1));
    return 0;
}

/* Strict UTF-8, as bytes.decode() checks it: no overlongs, no surrogates, nothing past U+10FFFF. */
static int utf8_ok(const unsigned char *s, Py_ssize_t n) {
    const unsigned char *end = s + n;
    while (s < end) {
        if (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if (!(w & 0x8080808080808080ULL)) { s += 8; continue; }
        }
        unsigned char c = *s;
        if (c < 0x80) { s++; continue; }
        if (c >= 0xC2 && c <= 0xDF) {
            if (end - s < 2 || (s[1] & 0xC0) != 0x80) return 0;
            s += 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            if (end - s < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80) return 0;
            if (c == 0xE0 && s[1] < 0xA0) return 0;  /* overlong */
            if (c == 0xED && s[1] > 0x9F) return 0;  /* surrogate */
            s += 3;
        } else if (c >= 0xF0 && c <= 0xF4) {
            if (end - s < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 || (s[3] & 0xC0) != 0x80)
                return 0;
            if (c == 0xF0 && s[1] < 0x90) return 0;  /* overlong */
            if (c == 0xF4 && s[1] > 0x8F) return 0;  /* past U+10FFFF */
            s += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

static int take(Cursor *c, int64_t n, const unsigned char **at) {
    if (n < 0 || n > c->end - c->p) return REFUSED;
    *at = c->p;
    c->p += n;
    return 0;
}

static int value(Reader *r, const Instr *ins, Cursor *c, int keep, int depth, PyObject **out);

static int record(Reader *r, int body, Cursor *c, int keep, int depth, PyObject **out) {
    if (depth > MAX_DEPTH) return REFUSED;
    const Instr *ins = r->code + r->start[body], *stop = ins + r->len[body];
    PyObject *d = NULL;
    if (keep && (d = PyDict_New()) == NULL) return FAILED;
    for (; ins < stop; ins++) {
        int hold = d != NULL && ins->key >= 0;
        PyObject *v = NULL;
        if (ins->op == OP_MARK) {
            c->mark = c->p - c->base;
            continue;
        }
        if (ins->op == OP_TEXT_MARK) {
            if (c->text) c->text->text_mark[ins->a] = c->text->len;
            continue;
        }
        if (ins->op == OP_DEFAULT) {
            if (d == NULL) continue;
            v = ins->b == FRESH_DICT ? PyDict_New() : ins->b == FRESH_LIST ? PyList_New(0)
                : Py_NewRef(PyTuple_GET_ITEM(r->consts, ins->a));
            if (v == NULL) { Py_DECREF(d); return FAILED; }
        } else {
            int err = value(r, ins, c, hold, depth, hold ? &v : NULL);
            if (err) { Py_XDECREF(d); return err; }
            if (!hold) continue;
        }
        int bad = PyDict_SetItem(d, PyTuple_GET_ITEM(r->names, ins->key), v);
        Py_DECREF(v);
        if (bad) { Py_DECREF(d); return FAILED; }
    }
    if (out) *out = d; else Py_XDECREF(d);
    return 0;
}

static int blocks(Reader *r, const Instr *ins, Cursor *c, int keep, int depth, PyObject **out) {
    if (depth > MAX_DEPTH) return REFUSED;
    const Instr *item = r->code + r->start[ins->a];
    int is_map = ins->op == OP_MAP;
    PyObject *wanted = is_map && ins->b >= 0 ? PyTuple_GET_ITEM(r->consts, ins->b) : NULL;
    PyObject *o = NULL;
    if (keep && (o = is_map ? PyDict_New() : PyList_New(0)) == NULL) return FAILED;
    int err = 0;
    for (;;) {
        int64_t count, size;
        if ((err = read_long(c, &count))) goto fail;
        if (count == 0) break;
        if (count < 0) {
            if (count < -(int64_t)(c->end - c->p)) { err = REFUSED; goto fail; }
            count = -count;
            if ((err = read_long(c, &size))) goto fail;
        }
        if (count > c->end - c->p) { err = REFUSED; goto fail; }
        for (int64_t k = 0; k < count; k++) {
            PyObject *v = NULL, *key = NULL;
            int hold = o != NULL;
            if (is_map) {
                int64_t n;
                const unsigned char *at;
                if ((err = read_long(c, &n)) || (err = take(c, n, &at))) goto fail;
                if (!utf8_ok(at, (Py_ssize_t)n)) { err = REFUSED; goto fail; }
                if (c->text) {
                    if (n > c->text->longest) c->text->longest = (Py_ssize_t)n;
                    if ((err = text_add(c->text, at, (Py_ssize_t)n, 0))) goto fail;  /* keys: always */
                }
                if (hold && wanted != NULL) {
                    hold = 0;
                    for (Py_ssize_t w = 0; w < PyTuple_GET_SIZE(wanted); w++) {
                        PyObject *wb = PyTuple_GET_ITEM(wanted, w);
                        if (PyBytes_GET_SIZE(wb) == n && memcmp(PyBytes_AS_STRING(wb), at, (size_t)n) == 0) {
                            hold = 1;
                            break;
                        }
                    }
                }
                if (hold && (key = PyUnicode_DecodeUTF8((const char *)at, (Py_ssize_t)n, "strict")) == NULL) {
                    err = FAILED;
                    goto fail;
                }
            }
            if ((err = value(r, item, c, hold, depth, hold ? &v : NULL))) { Py_XDECREF(key); goto fail; }
            if (!hold) continue;
            int bad = is_map ? PyDict_SetItem(o, key, v) : PyList_Append(o, v);
            Py_XDECREF(key);
            Py_DECREF(v);
            if (bad) { err = FAILED; goto fail; }
        }
    }
    if (out) *out = o; else Py_XDECREF(o);
    return 0;
fail:
    Py_XDECREF(o);
    return err;
}

/* One value at the cursor; a new reference in *out when ``keep`` (out may be NULL otherwise). */
static int value(Reader *r, const Instr *ins, Cursor *c, int keep, int depth, PyObject **out) {
    int64_t n;
    const unsigned char *at;
    int err;
    switch (ins->op) {
    case OP_STRING:
        if ((err = read_long(c, &n)) || (err = take(c, n, &at))) return err;
        if (c->text && (err = text_value(c, at, (Py_ssize_t)n, ins->b))) return err;
        if (!keep) return utf8_ok(at, (Py_ssize_t)n) ? 0 : REFUSED;
        *out = PyUnicode_DecodeUTF8((const char *)at, (Py_ssize_t)n, "strict");
        if (*out == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) return FAILED;
            PyErr_Clear();
            return REFUSED;
        }
        return 0;
    case OP_LONG:
        if ((err = read_long(c, &n))) return err;
        if (keep && (*out = PyLong_FromLongLong(n)) == NULL) return FAILED;
        return 0;
    case OP_RECORD:
        return record(r, ins->a, c, keep, depth + 1, out);
    case OP_UNION:
        if ((err = read_long(c, &n))) return err;
        if (n < 0 || n >= r->len[ins->a]) return REFUSED;
        return value(r, r->code + r->start[ins->a] + n, c, keep, depth, out);
    case OP_NULL:
        if (keep) *out = Py_NewRef(Py_None);
        return 0;
    case OP_BOOL:
        if ((err = take(c, 1, &at))) return err;
        if (*at > 1) return REFUSED;
        if (keep) *out = PyBool_FromLong(*at);
        return 0;
    case OP_DOUBLE:
    case OP_FLOAT: {
        int wide = ins->op == OP_DOUBLE;
        if ((err = take(c, wide ? 8 : 4, &at))) return err;
        if (!keep) return 0;
        double x = wide ? PyFloat_Unpack8((const char *)at, 1) : PyFloat_Unpack4((const char *)at, 1);
        if (x == -1.0 && PyErr_Occurred()) return FAILED;
        return (*out = PyFloat_FromDouble(x)) == NULL ? FAILED : 0;
    }
    case OP_BYTES:
    case OP_FIXED:
        if (ins->op == OP_BYTES) {
            if ((err = read_long(c, &n))) return err;
        } else {
            n = ins->a;
        }
        if ((err = take(c, n, &at))) return err;
        if (keep && (*out = PyBytes_FromStringAndSize((const char *)at, (Py_ssize_t)n)) == NULL) return FAILED;
        return 0;
    case OP_ENUM: {
        PyObject *symbols = PyTuple_GET_ITEM(r->consts, ins->a);
        if ((err = read_long(c, &n))) return err;
        if (n < 0 || n >= PyTuple_GET_SIZE(symbols)) return REFUSED;
        if (keep) *out = Py_NewRef(PyTuple_GET_ITEM(symbols, n));
        return 0;
    }
    case OP_ARRAY:
    case OP_MAP:
        return blocks(r, ins, c, keep, depth + 1, out);
    default:
        return REFUSED;
    }
}

static PyObject *run(Reader *self, PyObject *args, Text *text) {
    Py_buffer buf;
    Py_ssize_t start;
    if (!self->ready) {
        PyErr_SetString(PyExc_ValueError, "Reader not initialised");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "y*n", &buf, &start)) return NULL;
    if (start < 0 || start > buf.len) {
        PyBuffer_Release(&buf);
        Py_RETURN_NONE;
    }
    Cursor c = {buf.buf, (const unsigned char *)buf.buf + start, (const unsigned char *)buf.buf + buf.len, -1,
                text};
    PyObject *d = NULL;
    int err = record(self, self->top, &c, 1, 0, &d);
    PyBuffer_Release(&buf);
    if (err == FAILED) return NULL;
    if (err || c.p != c.end) {
        Py_XDECREF(d);
        Py_RETURN_NONE;
    }
    PyObject *res;
    if (text == NULL)
        res = Py_BuildValue("(Nn)", d, c.mark);
    else
        res = Py_BuildValue("(Nny#nnny#)", d, c.mark, (const char *)text->buf, text->len,
                            text->text_mark[0], text->text_mark[1], text->longest,
                            (const char *)text->ends, text->nends * (Py_ssize_t)sizeof(uint32_t));
    return res;
}

static PyObject *Reader_read(Reader *self, PyObject *args) {
    return run(self, args, NULL);
}

static PyObject *Reader_read_text(Reader *self, PyObject *args) {
    Text t;
    t.buf = t.small;
    t.len = 0;
    t.cap = (Py_ssize_t)sizeof t.small;
    t.ends = t.small_ends;
    t.nends = 0;
    t.capends = (Py_ssize_t)(sizeof t.small_ends / sizeof t.small_ends[0]);
    t.text_mark[0] = t.text_mark[1] = 0;
    t.longest = 0;
    PyObject *res = run(self, args, &t);
    if (t.buf != t.small) PyMem_Free(t.buf);
    if (t.ends != t.small_ends) PyMem_Free(t.ends);
    return res;
}

static void Reader_dealloc(Reader *self) {
    PyMem_Free(self->code);
    PyMem_Free(self->start);
    PyMem_Free(self->len);
    Py_XDECREF(self->names);
    Py_XDECREF(self->consts);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reader(bodies, names, consts, top): bodies is a sequence of tuples of (op, key, a, b). */
static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    PyObject *bodies, *names, *consts;
    int top;
    if (self->ready) {
        PyErr_SetString(PyExc_TypeError, "a Reader is initialised once");
        return -1;
    }
    PyMem_Free(self->code); /* left by an earlier __init__ that failed */
    PyMem_Free(self->start);
    PyMem_Free(self->len);
    self->code = NULL;
    self->start = self->len = NULL;
    if (!PyArg_ParseTuple(args, "OO!O!i", &bodies, &PyTuple_Type, &names, &PyTuple_Type, &consts, &top))
        return -1;
    for (Py_ssize_t k = 0; k < PyTuple_GET_SIZE(names); k++)
        if (!PyUnicode_Check(PyTuple_GET_ITEM(names, k))) {
            PyErr_SetString(PyExc_TypeError, "names must be str");
            return -1;
        }
    PyObject *seq = PySequence_Fast(bodies, "bodies must be a sequence");
    if (seq == NULL) return -1;
    Py_ssize_t nb = PySequence_Fast_GET_SIZE(seq), total = 0;
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyObject *b = PySequence_Fast_GET_ITEM(seq, i);
        if (!PyTuple_Check(b)) { Py_DECREF(seq); PyErr_SetString(PyExc_TypeError, "a body is a tuple"); return -1; }
        total += PyTuple_GET_SIZE(b);
    }
    if (top < 0 || top >= nb) { Py_DECREF(seq); PyErr_SetString(PyExc_ValueError, "top"); return -1; }
    self->code = PyMem_Calloc((size_t)total + 1, sizeof(Instr));
    self->start = PyMem_Calloc((size_t)nb, sizeof(Py_ssize_t));
    self->len = PyMem_Calloc((size_t)nb, sizeof(Py_ssize_t));
    if (!self->code || !self->start || !self->len) { Py_DECREF(seq); PyErr_NoMemory(); return -1; }
    Py_ssize_t at = 0;
    for (Py_ssize_t i = 0; i < nb; i++) {
        PyObject *b = PySequence_Fast_GET_ITEM(seq, i);
        self->start[i] = at;
        self->len[i] = PyTuple_GET_SIZE(b);
        for (Py_ssize_t j = 0; j < self->len[i]; j++, at++) {
            Instr *ins = &self->code[at];
            if (!PyArg_ParseTuple(PyTuple_GET_ITEM(b, j), "iiii", &ins->op, &ins->key, &ins->a, &ins->b)) {
                Py_DECREF(seq);
                return -1;
            }
            /* Every index is checked here once, so the interpreter can trust it. */
            int body_ref = ins->op == OP_RECORD || ins->op == OP_UNION || ins->op == OP_ARRAY || ins->op == OP_MAP;
            int const_ref = ins->op == OP_ENUM || ins->op == OP_DEFAULT;
            int bad = ins->key >= PyTuple_GET_SIZE(names) || (ins->key < 0 && ins->op == OP_DEFAULT)
                || (body_ref && (ins->a < 0 || ins->a >= nb))
                || (const_ref && (ins->a < 0 || ins->a >= PyTuple_GET_SIZE(consts)))
                || (ins->op == OP_MAP && ins->b >= PyTuple_GET_SIZE(consts))
                || (ins->op == OP_FIXED && ins->a < 0) || (ins->op == OP_TEXT_MARK && (ins->a < 0 || ins->a > 1))
                || ins->op < 0 || ins->op > OP_TEXT_MARK;
            if (!bad && ins->op == OP_ENUM) bad = !PyTuple_Check(PyTuple_GET_ITEM(consts, ins->a));
            if (!bad && ins->op == OP_MAP && ins->b >= 0) {
                PyObject *w = PyTuple_GET_ITEM(consts, ins->b);
                bad = !PyTuple_Check(w);
                for (Py_ssize_t k = 0; !bad && k < PyTuple_GET_SIZE(w); k++)
                    bad = !PyBytes_Check(PyTuple_GET_ITEM(w, k));
            }
            if (bad) {
                Py_DECREF(seq);
                PyErr_Format(PyExc_ValueError, "bad instruction %zd of body %zd", j, i);
                return -1;
            }
        }
    }
    for (Py_ssize_t i = 0; i < nb; i++) /* an array's or map's body holds its one item */
        for (Py_ssize_t j = 0; j < self->len[i]; j++) {
            Instr *ins = &self->code[self->start[i] + j];
            if ((ins->op == OP_ARRAY || ins->op == OP_MAP) && self->len[ins->a] != 1) {
                Py_DECREF(seq);
                PyErr_SetString(PyExc_ValueError, "an array or map body holds exactly one instruction");
                return -1;
            }
        }
    Py_DECREF(seq);
    self->nbodies = nb;
    self->names = Py_NewRef(names);
    self->consts = Py_NewRef(consts);
    self->top = top;
    self->ready = 1;
    return 0;
}

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)Reader_read, METH_VARARGS,
     "read(data, start) -> (dict of the selected fields, offset of the marked field or -1), or None"},
    {"read_text", (PyCFunction)Reader_read_text, METH_VARARGS,
     "read_text(data, start) -> read()'s pair + (text, text mark 0, text mark 1, longest string, ends), or None"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agentstream.stream_processors._fieldreader.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "A compiled field-reader program (see _fieldreader_ops.py).",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_fieldreader", "The processors' field reader in C (see _fieldreader_py.py).", -1, NULL,
};

PyMODINIT_FUNC PyInit__fieldreader(void) {
    if (PyType_Ready(&ReaderType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    if (PyModule_AddIntConstant(m, "MAX_DEPTH", MAX_DEPTH) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
