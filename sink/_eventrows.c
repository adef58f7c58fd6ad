/* The sink's direct path in C: Avro Event records (v1 or v2) -> RowBinary rows of the ``events``
 * table, as sink/rows.py event_row() maps them (sink/event_rows.py says when it is used).
 *
 * Why: the staging tables' view (migrations 0005/0006) did this mapping inside ClickHouse, and
 * ClickHouse analyses that ~850-function query again for every insert: ~75 ms of a ~140 ms
 * insert, plus ~4 us a row (bench/sink_cpu.py's anatomy). Here a row costs about a microsecond,
 * and an insert goes into ``events_direct``, whose view passes the rows on as they are.
 *
 * Exact by construction, or refused: the record is read field by field in its writer schema's
 * order (the caller checks the schema's canonical hash is Event v1's or v2's), every read is
 * bounds-checked, and anything event_row() would reject, or that Python would read differently
 * (a string that is not strict UTF-8, a map key given twice, an int out of range, a payload
 * branch that is not the one its kind names), refuses the whole body with ValueError. The sink
 * treats that as ClickHouse refusing a container: the range is redone in Python, which stores
 * or dead-letters each record with its reason.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include "_eventrows_read.h"

/* ---- writing: RowBinary of the events columns (sink/rows.py EVENT_COLUMNS, in order) ---- */

static void put_str(Buf *o, Str s) {  /* a null optional is '' as in event_row() */
    int64_t n = s.n < 0 ? 0 : s.n;
    buf_varuint(o, (uint64_t)n);
    buf_put(o, s.p, (size_t)n);
}

static void put_name(Buf *o, const char *s) {
    size_t n = strlen(s);
    buf_varuint(o, n);
    buf_put(o, s, n);
}

static const Str EMPTY = {NULL, 0};

#define PUT_FIXED(o, v) buf_put((o), &(v), sizeof(v))  /* little-endian hosts only (setup.py) */

static void put_i64(Buf *o, int64_t v) { PUT_FIXED(o, v); }
static void put_u64(Buf *o, uint64_t v) { PUT_FIXED(o, v); }
static void put_f64(Buf *o, double v) { PUT_FIXED(o, v); }

/* Walks a collection read before (so it is known to be well-formed): fn per item. */
typedef void (*ItemFn)(Buf *o, In *c, void *arg);

static void walk(const Coll *a, const unsigned char *end, Buf *o, ItemFn fn, void *arg) {
    In c = {a->p, end, NULL, NULL};
    int64_t k;
    while (!rd_block(&c, &k) && k)
        for (int64_t i = 0; i < k; i++) fn(o, &c, arg);
}

static void item_str(Buf *o, In *c, void *arg) { Str s; (void)arg; rd_str(c, &s); put_str(o, s); }

static void item_pair(Buf *o, In *c, void *arg) {
    Str k; rd_str(c, &k); put_str(o, k);
    if (arg) { int64_t v; rd_long(c, &v); put_u64(o, (uint64_t)v); }
    else { Str v; rd_str(c, &v); put_str(o, v); }
}

static void item_json(Buf *o, In *c, void *arg) {
    Str s;
    int *first = arg;
    rd_str(c, &s);
    if (!*first) buf_byte(o, ',');
    *first = 0;
    json_string(o, s.p, s.n);
}

static void put_coll(Buf *o, const Coll *a, const unsigned char *end, ItemFn fn, void *arg) {
    buf_varuint(o, (uint64_t)a->count);
    if (a->count) walk(a, end, o, fn, arg);
}

/* ---- the payload column: JSON text with sorted keys (rows.py payload_json) ---- */

static void key(Buf *o, int *first, const char *k) {
    if (!*first) buf_byte(o, ',');
    *first = 0;
    buf_byte(o, '"');
    buf_put(o, k, strlen(k));
    BUF_LIT(o, "\":");
}

static void jstr(Buf *o, int *first, const char *k, Str s) {  /* a null optional is left out */
    if (s.n < 0) return;
    key(o, first, k);
    json_string(o, s.p, s.n);
}

static void jbool(Buf *o, int *first, const char *k, int v) {
    key(o, first, k);
    if (v) BUF_LIT(o, "true"); else BUF_LIT(o, "false");
}

static void jarr(Buf *o, int *first, const char *k, const Coll *a, const unsigned char *end) {
    if (!a->count) return;  /* an empty list is left out (_compact) */
    int f = 1;
    key(o, first, k);
    buf_byte(o, '[');
    walk(a, end, o, item_json, &f);
    buf_byte(o, ']');
}

static void payload(Buf *o, const Ev *v, const unsigned char *end) {
    int f = 1, g;
    buf_byte(o, '{');
    switch (v->kind) {
    case 0:
        jstr(o, &f, "role", v->role); jbool(o, &f, "sampled", v->flag); break;
    case 1:
        key(o, &f, "cost_usd"); json_double(o, v->cost);
        key(o, &f, "input_tokens"); json_int(o, v->n3);
        key(o, &f, "llm_calls"); json_int(o, v->n2);
        key(o, &f, "output_tokens"); json_int(o, v->n4);
        key(o, &f, "step_count"); json_int(o, v->n1);
        break;
    case 2:
        if (v->approval) {
            key(o, &f, "approval"); buf_byte(o, '{'); g = 1;
            jstr(o, &g, "action_digest", v->action_digest);
            key(o, &g, "approval_latency_ms"); json_double(o, v->approval_ms);
            jstr(o, &g, "decision", v->decision);
            buf_byte(o, '}');
        }
        if (v->content && (v->preview.n >= 0 || v->reference.n >= 0)) {
            key(o, &f, "content"); buf_byte(o, '{'); g = 1;
            jstr(o, &g, "preview", v->preview); jstr(o, &g, "reference", v->reference);
            buf_byte(o, '}');
        }
        if (v->fallback) {
            key(o, &f, "fallback"); buf_byte(o, '{'); g = 1;
            jbool(o, &g, "preserves_safety_posture", v->pss); jstr(o, &g, "reason", v->fb_reason);
            jstr(o, &g, "source", v->fb_source); jstr(o, &g, "target", v->fb_target);
            buf_byte(o, '}');
        }
        if (v->handoff) {
            key(o, &f, "handoff"); buf_byte(o, '{'); g = 1;
            jstr(o, &g, "role", v->ho_role); jstr(o, &g, "to_agent_id", v->to_agent_id);
            jstr(o, &g, "to_run_id", v->to_run_id);
            buf_byte(o, '}');
        }
        if (v->llm) {
            key(o, &f, "llm"); buf_byte(o, '{'); g = 1;
            jarr(o, &g, "finish_reasons", &v->finish_reasons, end); jstr(o, &g, "operation", v->operation);
            jstr(o, &g, "response_model", v->response_model); jarr(o, &g, "tool_calls", &v->tool_calls, end);
            buf_byte(o, '}');
        }
        if (v->tool && v->call_id.n >= 0) {
            key(o, &f, "tool"); buf_byte(o, '{'); g = 1;
            jstr(o, &g, "call_id", v->call_id);
            buf_byte(o, '}');
        }
        break;
    case 3:
        jstr(o, &f, "message", v->s_b); jbool(o, &f, "retryable", v->flag); break;
    case 5:
        if (v->has_opt_dbl) { key(o, &f, "weight"); json_double(o, v->dbl); }
        break;
    case 6:
        jstr(o, &f, "feedback_type", v->s_b); jstr(o, &f, "interaction_id", v->s_a);
        jstr(o, &f, "source", v->s_d); jstr(o, &f, "value", v->s_c);
        break;
    case 7:
        jstr(o, &f, "command_id", v->s_a); jstr(o, &f, "command_type", v->s_b);
        jstr(o, &f, "detail", v->s_d); jstr(o, &f, "status", v->s_c);
        break;
    default:  /* Decision: everything is in columns */
        break;
    }
    buf_byte(o, '}');
}

static void put_row(Buf *o, Buf *js, const Ev *v, const unsigned char *end) {
    int st = v->kind == 2, re = v->kind == 1, fl = v->kind == 3, dc = v->kind == 4, qs = v->kind == 5;
    int llm = st && v->llm, tool = st && v->tool;
    put_str(o, v->tenant_id); put_i64(o, v->ts_us); put_str(o, v->event_id); put_str(o, v->agent_id);
    put_str(o, v->agent_version); put_str(o, v->environment); put_str(o, v->run_id);
    put_str(o, v->session_id); put_str(o, v->parent_run_id); put_str(o, v->parent_step_id);
    put_str(o, v->end_user_id);
    uint32_t seq = (uint32_t)v->seq;
    PUT_FIXED(o, seq);
    put_name(o, KINDS[v->kind]);
    put_str(o, (st || fl || dc || qs) ? v->step_id : EMPTY);
    if (st) put_name(o, STEP_KIND[v->e]); else put_str(o, EMPTY);
    put_str(o, st || v->kind == 0 ? v->s_a : EMPTY);  /* name: the step's, or the run's entrypoint */
    if (st) put_name(o, STEP_STATUS[v->e2]); else put_str(o, EMPTY);
    put_i64(o, st || re ? v->started_us : v->ts_us);
    put_f64(o, st ? v->dbl : 0.0);
    uint16_t attempt = st ? (uint16_t)v->attempt : 0;
    PUT_FIXED(o, attempt);
    put_str(o, st ? v->retry_of : EMPTY);
    put_str(o, llm ? v->provider : EMPTY); put_str(o, llm ? v->request_model : EMPTY);
    for (int i = 0; i < 4; i++) put_u64(o, llm ? (uint64_t)v->tok[i] : 0);
    put_f64(o, llm && v->llm_cost != 0 ? v->llm_cost : 0.0);  /* float(cost or 0.0): -0.0 -> 0.0 */
    put_str(o, llm ? v->request_digest : EMPTY);
    put_str(o, tool ? v->tool_name : EMPTY); put_str(o, tool ? v->args_digest : EMPTY);
    if (fl) put_name(o, FAILURE_TYPE[v->e]); else put_str(o, EMPTY);
    put_str(o, fl ? v->s_a : EMPTY);
    put_str(o, dc ? v->s_a : EMPTY); put_str(o, dc ? v->s_b : EMPTY);
    if (dc) put_coll(o, &v->arr, end, item_str, NULL); else buf_varuint(o, 0);
    put_str(o, dc ? v->s_c : EMPTY);
    buf_byte(o, !(dc && v->has_opt_dbl));  /* Nullable: 1 = NULL */
    if (dc && v->has_opt_dbl) put_f64(o, v->dbl);
    put_str(o, qs ? v->s_a : EMPTY); put_str(o, qs ? v->s_b : EMPTY);
    buf_byte(o, !qs);
    if (qs) buf_byte(o, (unsigned char)v->flag);
    if (re) put_name(o, RUN_STATUS[v->e]); else put_str(o, EMPTY);
    put_str(o, re ? v->s_a : EMPTY);
    put_f64(o, re ? v->dbl : 0.0);
    js->n = 0;
    payload(js, v, end);
    buf_varuint(o, js->n);
    buf_put(o, js->b, js->n);
    put_coll(o, &v->attributes, end, item_pair, NULL);
    put_name(o, CAPTURE[v->capture_mode]);
    put_str(o, v->policy_version);
    put_coll(o, &v->rule_counts, end, item_pair, (void *)1);
    uint16_t days = (uint16_t)v->retention;
    PUT_FIXED(o, days);
    if (js->oom) o->oom = 1;
}

/* The run a row belongs to, for the API's cache of runs a tenant does not have (api/store/
 * run_misses.py): tenant_id, 0xFF, run_id, 0xFE. Neither byte occurs in UTF-8, and every string
 * here is strict UTF-8 (or the body is refused), so the keys split apart exactly. A row of the
 * same run as the row before adds nothing. */
static void put_run(Buf *o, const Ev *v, Str *last_tenant, Str *last_run) {
    if (last_run->p && last_run->n == v->run_id.n && last_tenant->n == v->tenant_id.n
        && !memcmp(last_run->p, v->run_id.p, (size_t)v->run_id.n)
        && !memcmp(last_tenant->p, v->tenant_id.p, (size_t)v->tenant_id.n))
        return;
    buf_put(o, v->tenant_id.p, (size_t)v->tenant_id.n);
    buf_byte(o, 0xFF);
    buf_put(o, v->run_id.p, (size_t)v->run_id.n);
    buf_byte(o, 0xFE);
    *last_tenant = v->tenant_id;
    *last_run = v->run_id;
}

/* event_rows(body: bytes, count: int, v2: bool, runs: bool = False) -> bytes, or with runs
 * (bytes, bytes): the rows and the runs they belong to (put_run) */
static PyObject *event_rows(PyObject *self, PyObject *args) {
    PyObject *body;
    Py_ssize_t count;
    int v2, want_runs = 0;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!np|p", &PyBytes_Type, &body, &count, &v2, &want_runs)) return NULL;
    const unsigned char *in = (const unsigned char *)PyBytes_AS_STRING(body);
    Py_ssize_t inlen = PyBytes_GET_SIZE(body);
    Buf out = {NULL, 0, 0, 0}, js = {NULL, 0, 0, 0}, keys = {NULL, 0, 0, 0}, runs = {NULL, 0, 0, 0};
    In c = {in, in + inlen, NULL, &keys};
    Ev v;
    Str last_tenant = {NULL, 0}, last_run = {NULL, 0};
    Py_ssize_t i = 0;
    int r = 0;
    /* the input is an immutable bytes object: the sink's reader thread runs meanwhile */
    Py_BEGIN_ALLOW_THREADS
    buf_need(&out, (size_t)inlen + (size_t)inlen / 2 + 256);
    for (; !out.oom && i < count; i++) {
        memset(&v, 0, sizeof v);
        if ((r = rd_event(&c, &v, v2))) break;
        put_row(&out, &js, &v, c.end);
        if (want_runs) put_run(&runs, &v, &last_tenant, &last_run);
    }
    Py_END_ALLOW_THREADS
    PyObject *res = NULL;
    if (out.oom || keys.oom || runs.oom) PyErr_NoMemory();
    else if (r) PyErr_Format(PyExc_ValueError, "record %zd of %zd: %s", i, count, c.why);
    else if (c.p != c.end)
        PyErr_Format(PyExc_ValueError, "%zd bytes left after %zd records", (Py_ssize_t)(c.end - c.p), count);
    else if (want_runs)
        res = Py_BuildValue("(y#y#)", out.b ? (const char *)out.b : "", (Py_ssize_t)out.n,
                            runs.b ? (const char *)runs.b : "", (Py_ssize_t)runs.n);
    else
        res = PyBytes_FromStringAndSize((const char *)out.b, (Py_ssize_t)out.n);
    free(out.b); free(js.b); free(keys.b); free(runs.b);
    return res;
}

/* json_double(x) -> str: the payload's text of a double (for the tests against orjson) */
static PyObject *py_json_double(PyObject *self, PyObject *arg) {
    (void)self;
    double x = PyFloat_AsDouble(arg);
    if (x == -1.0 && PyErr_Occurred()) return NULL;
    Buf o = {NULL, 0, 0, 0};
    json_double(&o, x);
    PyObject *res = o.oom ? PyErr_NoMemory() : PyUnicode_FromStringAndSize((const char *)o.b, (Py_ssize_t)o.n);
    free(o.b);
    return res;
}

static PyMethodDef methods[] = {
    {"event_rows", event_rows, METH_VARARGS,
     "event_rows(body, count, v2, runs=False) -> bytes: count framed Event records as events RowBinary "
     "rows (with runs: and the runs they belong to); ValueError if one does not map exactly"},
    {"json_double", py_json_double, METH_O, "json_double(x) -> str: a double as the payload's JSON writes it"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {PyModuleDef_HEAD_INIT, "_eventrows", NULL, -1, methods};

PyMODINIT_FUNC PyInit__eventrows(void) { return PyModule_Create(&moduledef); }
