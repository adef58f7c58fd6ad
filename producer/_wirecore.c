/* The transport thread's per-event encoding in C: one Event v2 record (envelope, attribute
 * map and, for a STEP, its payload) written straight into one buffer.
 *
 * Why C: the pure-Python encoder (wire.py) costs ~10 us per STEP event in CPython 3.11 (some
 * forty small calls: strings, varints, optional records), as much as everything the agent's
 * thread does for the event. Under the e2e workload that was half of the SDK's CPU.
 *
 * wire.py stays the reference and the fallback. This module handles the common shapes only:
 * exact str / int / float / None / bool values, dicts for the llm and tool records, lists or
 * tuples of str, attribute values that are str, None, bool, int or float. For anything else
 * (a subclass, a handoff/approval/fallback/content record, more than MAX_ATTRS attributes, an
 * attribute value of another type, a string that is not valid UTF-8) it returns None and wire.py encodes the event, so every output is
 * byte-identical to wire.py's and every error is wire.py's own (tests/unit/producer
 * compare both on random events).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_ATTRS 64
#define MAX_ATTR_LEN 1024

typedef struct {
    char *p;
    Py_ssize_t n, cap;
    char stack[1024];
} Buf;

static void buf_init(Buf *b) {
    b->p = b->stack;
    b->n = 0;
    b->cap = (Py_ssize_t)sizeof b->stack;
}

static void buf_free(Buf *b) {
    if (b->p != b->stack) PyMem_Free(b->p);
}

/* 0 ok, -1 out of memory (the caller gives up: wire.py then tries, and fails the same way) */
static int reserve(Buf *b, Py_ssize_t extra) {
    if (b->n + extra <= b->cap) return 0;
    Py_ssize_t cap = b->cap * 2;
    while (cap < b->n + extra) cap *= 2;
    char *np = PyMem_Malloc((size_t)cap);
    if (np == NULL) return -1;
    memcpy(np, b->p, (size_t)b->n);
    if (b->p != b->stack) PyMem_Free(b->p);
    b->p = np;
    b->cap = cap;
    return 0;
}

static int put(Buf *b, const char *s, Py_ssize_t n) {
    if (reserve(b, n) < 0) return -1;
    memcpy(b->p + b->n, s, (size_t)n);
    b->n += n;
    return 0;
}

static int put_byte(Buf *b, unsigned char c) {
    if (reserve(b, 1) < 0) return -1;
    b->p[b->n++] = (char)c;
    return 0;
}

static int put_varint(Buf *b, uint64_t z) {
    if (reserve(b, 10) < 0) return -1;
    while (z >= 0x80) {
        b->p[b->n++] = (char)((z & 0x7F) | 0x80);
        z >>= 7;
    }
    b->p[b->n++] = (char)z;
    return 0;
}

/* Avro long: zigzag then varint (wire.enc_long; for n in [-2**63, 2**63) the same bytes) */
static int put_ll(Buf *b, long long n) {
    uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
    return put_varint(b, z);
}

static int put_long(Buf *b, PyObject *o) {
    if (!PyLong_Check(o)) return -1;
    int overflow = 0;
    long long v = PyLong_AsLongLongAndOverflow(o, &overflow);
    if (overflow || (v == -1 && PyErr_Occurred())) return -1;
    return put_ll(b, v);
}

/* wire.py's _SMALL_LONGS[i]: an index in [0, 4096) only (anything else: wire.py decides) */
static int put_small(Buf *b, PyObject *o) {
    if (!PyLong_Check(o)) return -1;
    long v = PyLong_AsLong(o);
    if (v == -1 && PyErr_Occurred()) return -1;
    if (v < 0 || v >= 4096) return -1;
    return put_ll(b, v);
}

static int put_str(Buf *b, PyObject *o) {
    if (!PyUnicode_CheckExact(o)) return -1;
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(o, &n); /* NULL for lone surrogates */
    if (s == NULL) return -1;
    if (put_ll(b, n) < 0) return -1;
    return put(b, s, n);
}

static int put_opt_str(Buf *b, PyObject *o) {
    if (o == Py_None) return put_byte(b, 0);
    if (put_byte(b, 2) < 0) return -1;
    return put_str(b, o);
}

static int put_double_raw(Buf *b, double d) {
    unsigned char raw[8];
    memcpy(raw, &d, 8);
#if !PY_LITTLE_ENDIAN
    for (int i = 0; i < 4; i++) {
        unsigned char t = raw[i];
        raw[i] = raw[7 - i];
        raw[7 - i] = t;
    }
#endif
    return put(b, (const char *)raw, 8);
}

/* float(x) packed "<d" for an exact float or an int (anything else: wire.py) */
static int put_double(Buf *b, PyObject *o) {
    double d;
    if (PyFloat_CheckExact(o)) d = PyFloat_AS_DOUBLE(o);
    else if (PyLong_CheckExact(o)) {
        d = PyLong_AsDouble(o);
        if (d == -1.0 && PyErr_Occurred()) return -1;
    } else return -1;
    return put_double_raw(b, d);
}

/* wire.enc_str_array for None or a list/tuple of exact str */
static int put_str_array(Buf *b, PyObject *o) {
    if (o == Py_None) return put_byte(b, 0);
    if (!PyList_CheckExact(o) && !PyTuple_CheckExact(o)) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(o);
    if (n == 0) return put_byte(b, 0);
    if (put_ll(b, n) < 0) return -1;
    PyObject **items = PySequence_Fast_ITEMS(o);
    for (Py_ssize_t i = 0; i < n; i++)
        if (put_str(b, items[i]) < 0) return -1;
    return put_byte(b, 0);
}

static PyObject *s_provider, *s_operation, *s_request_model, *s_response_model, *s_input_tokens,
    *s_output_tokens, *s_cache_read_tokens, *s_cache_write_tokens, *s_cost_usd, *s_finish_reasons,
    *s_tool_calls, *s_request_digest, *s_tool_name, *s_call_id, *s_args_digest, *s_chat,
    *s_zero, *s_zero_f;

/* r[key] (required) or r.get(key, dflt); NULL with no exception set when missing and required */
static PyObject *field(PyObject *r, PyObject *key, PyObject *dflt) {
    PyObject *v = PyDict_GetItemWithError(r, key);
    if (v == NULL && !PyErr_Occurred()) return dflt;
    return v;
}

#define FIELD(var, key, dflt)                                   \
    PyObject *var = field(r, key, dflt);                        \
    if (var == NULL) return -1;

static int put_llm(Buf *b, PyObject *r) {
    if (!PyDict_CheckExact(r)) return -1;
    FIELD(provider, s_provider, NULL);
    FIELD(operation, s_operation, s_chat);
    FIELD(request_model, s_request_model, NULL);
    FIELD(response_model, s_response_model, Py_None);
    FIELD(input_tokens, s_input_tokens, s_zero);
    FIELD(output_tokens, s_output_tokens, s_zero);
    FIELD(cache_read, s_cache_read_tokens, s_zero);
    FIELD(cache_write, s_cache_write_tokens, s_zero);
    FIELD(cost, s_cost_usd, s_zero_f);
    FIELD(finish, s_finish_reasons, Py_None);
    FIELD(calls, s_tool_calls, Py_None);
    FIELD(digest, s_request_digest, Py_None);
    if (put_str(b, provider) < 0 || put_str(b, operation) < 0 || put_str(b, request_model) < 0
        || put_opt_str(b, response_model) < 0 || put_long(b, input_tokens) < 0
        || put_long(b, output_tokens) < 0 || put_long(b, cache_read) < 0
        || put_long(b, cache_write) < 0 || put_double(b, cost) < 0 || put_str_array(b, finish) < 0
        || put_str_array(b, calls) < 0 || put_opt_str(b, digest) < 0)
        return -1;
    return 0;
}

static int put_tool(Buf *b, PyObject *r) {
    if (!PyDict_CheckExact(r)) return -1;
    FIELD(name, s_tool_name, NULL);
    FIELD(call_id, s_call_id, Py_None);
    FIELD(digest, s_args_digest, Py_None);
    if (put_str(b, name) < 0 || put_opt_str(b, call_id) < 0 || put_opt_str(b, digest) < 0) return -1;
    return 0;
}

/* wire.enc_step for the STEP tuple: llm and tool records only (others: wire.py) */
static int put_step(Buf *b, PyObject *t) {
    if (!PyTuple_CheckExact(t) || PyTuple_GET_SIZE(t) != 14) return -1;
    PyObject **f = &PyTuple_GET_ITEM(t, 0);
    for (int i = 10; i < 14; i++) /* handoff, approval, fallback, content */
        if (f[i] != Py_None) return -1;
    if (put_str(b, f[0]) < 0 || put_small(b, f[1]) < 0 || put_str(b, f[2]) < 0
        || put_small(b, f[3]) < 0 || put_long(b, f[4]) < 0)
        return -1;
    /* latency_ms is packed as given (struct.pack("<d")), not through float() */
    if (PyFloat_CheckExact(f[5])) {
        if (put_double_raw(b, PyFloat_AS_DOUBLE(f[5])) < 0) return -1;
    } else return -1;
    if (put_long(b, f[6]) < 0 || put_opt_str(b, f[7]) < 0) return -1;
    if (f[8] == Py_None) {
        if (put_byte(b, 0) < 0) return -1;
    } else if (put_byte(b, 2) < 0 || put_llm(b, f[8]) < 0) return -1;
    if (f[9] == Py_None) {
        if (put_byte(b, 0) < 0) return -1;
    } else if (put_byte(b, 2) < 0 || put_tool(b, f[9]) < 0) return -1;
    return put(b, "\0\0\0\0", 4);
}

static PyObject *s_empty, *s_true, *s_false;

/* wire.attr_str's value for an exact str (cut to MAX_ATTR_LEN code points), None, bool, int or
   float (str() of the last two is their repr, no user code runs); NULL, no exception: wire.py */
static PyObject *attr_value(PyObject *v) {
    if (PyUnicode_CheckExact(v)) {
        if (PyUnicode_GET_LENGTH(v) <= MAX_ATTR_LEN) {
            Py_INCREF(v);
            return v;
        }
        return PyUnicode_Substring(v, 0, MAX_ATTR_LEN);
    }
    PyObject *r;
    if (v == Py_None) r = s_empty;
    else if (v == Py_True) r = s_true;
    else if (v == Py_False) r = s_false;
    else if (PyLong_CheckExact(v) || PyFloat_CheckExact(v)) {
        PyObject *t = PyObject_Str(v);
        if (t == NULL || PyUnicode_GET_LENGTH(t) <= MAX_ATTR_LEN) return t;
        r = PyUnicode_Substring(t, 0, MAX_ATTR_LEN);
        Py_DECREF(t);
        return r;
    } else return NULL;
    Py_INCREF(r);
    return r;
}

/* wire.enc_attr_map for None or an exact dict of at most MAX_ATTRS exact-str keys and values
   attr_value converts (anything else: wire.py) */
static int put_attrs(Buf *b, PyObject *m) {
    if (m == Py_None) return put_byte(b, 0);
    if (!PyDict_CheckExact(m)) return -1;
    Py_ssize_t n = PyDict_GET_SIZE(m);
    if (n == 0) return put_byte(b, 0);
    if (n > MAX_ATTRS) return -1;
    if (put_ll(b, n) < 0) return -1;
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(m, &pos, &k, &v)) {
        if (put_str(b, k) < 0) return -1;
        PyObject *sv = attr_value(v);
        if (sv == NULL) return -1;
        int rc = put_str(b, sv);
        Py_DECREF(sv);
        if (rc < 0) return -1;
    }
    return put_byte(b, 0);
}

static int put_bytes_obj(Buf *b, PyObject *o) {
    if (!PyBytes_CheckExact(o)) return -1;
    return put(b, PyBytes_AS_STRING(o), PyBytes_GET_SIZE(o));
}

/* encode_event(pre, middle, id_base, tail, seq, ts_us, emitted_us, parent_step_id, attributes,
 *              kind_prefix, step, body) -> bytes | None
 *
 * RunWire.encode's record: pre (framing + event-id head), the seq as 12 hex digits, middle,
 * the optional parent step id, seq, ts_us, emitted_us, id_base, attributes, no redaction,
 * kind_prefix, then the STEP tuple ``step`` encoded here or the already encoded ``body``, and
 * tail. None: wire.py must encode this one. */
static PyObject *encode_event(PyObject *mod, PyObject *const *a, Py_ssize_t na) {
    if (na != 12) {
        PyErr_SetString(PyExc_TypeError, "encode_event takes 12 arguments");
        return NULL;
    }
    PyObject *seq = a[4], *ts = a[5], *emitted = a[6], *psid = a[7];
    if (!PyLong_CheckExact(seq)) Py_RETURN_NONE;
    long long sv = PyLong_AsLongLong(seq);
    if (sv < 0) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    Buf b;
    buf_init(&b);
    char hex[32];
    int hn = snprintf(hex, sizeof hex, "%012llx", sv);
    int ok = put_bytes_obj(&b, a[0]) == 0 && put(&b, hex, hn) == 0 && put_bytes_obj(&b, a[1]) == 0
        && (psid == Py_None ? put_byte(&b, 0) == 0 : (put_byte(&b, 2) == 0 && put_str(&b, psid) == 0))
        && put_ll(&b, sv) == 0 && put_long(&b, ts) == 0 && put_long(&b, emitted) == 0
        && put_bytes_obj(&b, a[2]) == 0 && put_attrs(&b, a[8]) == 0 && put_byte(&b, 0) == 0
        && put_bytes_obj(&b, a[9]) == 0
        && (a[10] != Py_None ? put_step(&b, a[10]) == 0 : put_bytes_obj(&b, a[11]) == 0)
        && put_bytes_obj(&b, a[3]) == 0;
    PyObject *out = NULL;
    if (ok) out = PyBytes_FromStringAndSize(b.p, b.n);
    buf_free(&b);
    if (out == NULL) {
        PyErr_Clear(); /* wire.py encodes it, or raises its own error for it */
        Py_RETURN_NONE;
    }
    return out;
}

static PyMethodDef module_methods[] = {
    {"encode_event", (PyCFunction)(void (*)(void))encode_event, METH_FASTCALL,
     "encode_event(pre, middle, id_base, tail, seq, ts_us, emitted_us, parent_step_id, "
     "attributes, kind_prefix, step, body) -> bytes | None (see wire.RunWire.encode)"},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_wirecore", "Event v2 encoding in C (see wire.py).", -1, module_methods,
};

#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;

PyMODINIT_FUNC PyInit__wirecore(void) {
    INTERN(s_provider, "provider");
    INTERN(s_operation, "operation");
    INTERN(s_request_model, "request_model");
    INTERN(s_response_model, "response_model");
    INTERN(s_input_tokens, "input_tokens");
    INTERN(s_output_tokens, "output_tokens");
    INTERN(s_cache_read_tokens, "cache_read_tokens");
    INTERN(s_cache_write_tokens, "cache_write_tokens");
    INTERN(s_cost_usd, "cost_usd");
    INTERN(s_finish_reasons, "finish_reasons");
    INTERN(s_tool_calls, "tool_calls");
    INTERN(s_request_digest, "request_digest");
    INTERN(s_tool_name, "tool_name");
    INTERN(s_call_id, "call_id");
    INTERN(s_args_digest, "args_digest");
    INTERN(s_chat, "chat");
    INTERN(s_empty, "");
    INTERN(s_true, "true");
    INTERN(s_false, "false");
    if ((s_zero = PyLong_FromLong(0)) == NULL) return NULL;
    if ((s_zero_f = PyFloat_FromDouble(0.0)) == NULL) return NULL;
    return PyModule_Create(&moduledef);
}
