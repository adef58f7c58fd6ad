/* The step hot path in C: Run.step(), Step.__init__/__enter__/__exit__.
 *
 * Why C: in CPython 3.11 a pure-Python `with run.step(...)` costs ~3 us on this kind of
 * machine, most of it interpreter overhead (two Python frames per open and close, a kwargs
 * dict built twice, attribute stores into an instance dict). The same work here is a handful
 * of C calls. The semantics are exactly those of the pure-Python core in step.py, which stays
 * the reference and the fallback when this module is not built; tests run both.
 *
 * What this module must agree with Python on:
 * - the clock: _t0/_lat are time.perf_counter_ns() values (the same C function underneath);
 * - the context variable: the current step is `context.current_step`;
 * - gated runs (a budget, throttle or pending command) and every unusual call (a retry_of or
 *   attempt value, an unknown kind, a non-dict mapping) take the Python path, so enforcement and
 *   bookkeeping logic exists once, in Python.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#if PY_VERSION_HEX >= 0x030D0000
static inline int64_t now_ns(void) {
    PyTime_t t;
    if (PyTime_PerfCounterRaw(&t) < 0) return 0;
    return (int64_t)t;
}
#else
static inline int64_t now_ns(void) { return (int64_t)_PyTime_GetPerfCounter(); }
#endif

/* Set once by configure(). */
static PyObject *g_current_step = NULL; /* the ContextVar */
static PyObject *g_step_type = NULL;    /* the Python subclass of StepCore that Run.step builds */
static PyObject *g_kinds = NULL;        /* dict: kind name -> kind index */
static PyObject *g_slow_step = NULL;    /* Run.step, the pure-Python function */
static long g_llm_kind = -1;

static PyObject *s_gate, *s_step_count, *s_llm_calls, *s_q, *s_qmax, *s_t, *s_overflow,
    *s_append, *s_failed, *s_enter_gated, *s_attempt, *s_retry_of, *s_one;

typedef struct {
    PyObject_HEAD
    PyObject *run;
    PyObject *kind;
    PyObject *name;
    PyObject *attrs;
    PyObject *parent; /* _parent */
    PyObject *token;  /* _token */
    PyObject *n;      /* _n */
    int64_t t0, lat;
    char has_t0, has_lat;
} StepCore;

static int configured(void) {
    if (g_current_step == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "agentstream._speedups is not configured");
        return 0;
    }
    return 1;
}

static int StepCore_traverse(StepCore *self, visitproc visit, void *arg) {
    /* The type is not visited: StepCore is static, and the Python subclass's own traverse
       (subtype_traverse) visits the heap type before calling this. */
    Py_VISIT(self->run);
    Py_VISIT(self->kind);
    Py_VISIT(self->name);
    Py_VISIT(self->attrs);
    Py_VISIT(self->parent);
    Py_VISIT(self->token);
    Py_VISIT(self->n);
    return 0;
}

static int StepCore_clear(StepCore *self) {
    Py_CLEAR(self->run);
    Py_CLEAR(self->kind);
    Py_CLEAR(self->name);
    Py_CLEAR(self->attrs);
    Py_CLEAR(self->parent);
    Py_CLEAR(self->token);
    Py_CLEAR(self->n);
    return 0;
}

static void StepCore_dealloc(StepCore *self) {
    PyObject_GC_UnTrack(self);
    StepCore_clear(self);
    /* A Python subclass's subtype_dealloc drops the reference to its heap type. */
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int StepCore_init(StepCore *self, PyObject *args, PyObject *kwds) {
    PyObject *run, *kind, *name, *attrs;
    if (kwds != NULL && PyDict_GET_SIZE(kwds)) {
        PyErr_SetString(PyExc_TypeError, "Step() takes (run, kind, name, attrs) positionally");
        return -1;
    }
    if (!PyArg_UnpackTuple(args, "Step", 4, 4, &run, &kind, &name, &attrs)) return -1;
    Py_INCREF(run);
    Py_XSETREF(self->run, run);
    Py_INCREF(kind);
    Py_XSETREF(self->kind, kind);
    Py_INCREF(name);
    Py_XSETREF(self->name, name);
    if (attrs == Py_None) {
        Py_CLEAR(self->attrs);
    } else {
        Py_INCREF(attrs);
        Py_XSETREF(self->attrs, attrs);
    }
    return 0;
}

/* --- _t0 / _lat: int nanoseconds or None ------------------------------------------------ */
static PyObject *get_ns(int64_t v, char has) {
    if (!has) Py_RETURN_NONE;
    return PyLong_FromLongLong(v);
}

static int set_ns(PyObject *value, int64_t *v, char *has) {
    if (value == NULL || value == Py_None) {
        *has = 0;
        return 0;
    }
    long long x = PyLong_AsLongLong(value);
    if (x == -1 && PyErr_Occurred()) return -1;
    *v = x;
    *has = 1;
    return 0;
}

static PyObject *StepCore_get_t0(StepCore *self, void *c) { return get_ns(self->t0, self->has_t0); }
static int StepCore_set_t0(StepCore *self, PyObject *v, void *c) {
    return set_ns(v, &self->t0, &self->has_t0);
}
static PyObject *StepCore_get_lat(StepCore *self, void *c) { return get_ns(self->lat, self->has_lat); }
static int StepCore_set_lat(StepCore *self, PyObject *v, void *c) {
    return set_ns(v, &self->lat, &self->has_lat);
}

/* --- the hot path ------------------------------------------------------------------------ */
static int open_step(StepCore *self) {
    PyObject *parent = NULL;
    if (PyContextVar_Get(g_current_step, Py_None, &parent) < 0) return -1;
    Py_XSETREF(self->parent, parent);
    PyObject *tok = PyContextVar_Set(g_current_step, (PyObject *)self);
    if (tok == NULL) return -1;
    Py_XSETREF(self->token, tok);
    self->t0 = now_ns();
    self->has_t0 = 1;
    return 0;
}

static PyObject *StepCore_enter(StepCore *self, PyObject *unused) {
    if (!configured()) return NULL;
    PyObject *gate = PyObject_GetAttr(self->run, s_gate);
    if (gate == NULL) return NULL;
    int gated = PyObject_IsTrue(gate);
    Py_DECREF(gate);
    if (gated < 0) return NULL;
    if (gated) return PyObject_CallMethodNoArgs((PyObject *)self, s_enter_gated);
    if (open_step(self) < 0) return NULL;
    Py_INCREF(self);
    return (PyObject *)self;
}

static int incr_attr(PyObject *obj, PyObject *name) {
    PyObject *v = PyObject_GetAttr(obj, name);
    if (v == NULL) return -1;
    PyObject *w = PyNumber_Add(v, s_one);
    Py_DECREF(v);
    if (w == NULL) return -1;
    int rc = PyObject_SetAttr(obj, name, w);
    Py_DECREF(w);
    return rc;
}

static int queue_step(StepCore *self) {
    PyObject *run = self->run;
    if (incr_attr(run, s_step_count) < 0) return -1;
    if (self->kind != NULL && PyLong_CheckExact(self->kind)) {
        long k = PyLong_AsLong(self->kind);
        if (k == -1 && PyErr_Occurred()) return -1;
        if (k == g_llm_kind && incr_attr(run, s_llm_calls) < 0) return -1;
    }
    PyObject *q = PyObject_GetAttr(run, s_q);
    if (q == NULL) return -1;
    PyObject *qmax = PyObject_GetAttr(run, s_qmax);
    if (qmax == NULL) {
        Py_DECREF(q);
        return -1;
    }
    Py_ssize_t n = PyObject_Length(q);
    Py_ssize_t max = PyLong_AsSsize_t(qmax);
    Py_DECREF(qmax);
    if ((n < 0 || max == -1) && PyErr_Occurred()) {
        Py_DECREF(q);
        return -1;
    }
    int rc = 0;
    if (n < max) {
        PyObject *r = PyObject_CallMethodOneArg(q, s_append, (PyObject *)self);
        if (r == NULL) rc = -1;
        else if (PyObject_GC_IsTracked((PyObject *)self)) {
            /* While queued, the step is reachable from the queue, so the cyclic GC could only
               spend time on it: a burst of queued steps made every collection the agent's
               thread triggers scan them all (~0.6 us per step in bench/sdk_overhead.py).
               The transport thread tracks it again when it takes it (_taken), so a cycle
               through a step the agent keeps is still collected. */
            PyObject_GC_UnTrack((PyObject *)self);
        }
        Py_XDECREF(r);
    } else {
        /* Full: the transport drops the oldest queued event to make room (a cold path, in
           Python: transport_queue.EventQueue.overflow). */
        PyObject *t = PyObject_GetAttr(run, s_t);
        if (t == NULL) rc = -1;
        else {
            PyObject *r = PyObject_CallMethodOneArg(t, s_overflow, (PyObject *)self);
            if (r == NULL) rc = -1;
            Py_XDECREF(r);
            Py_DECREF(t);
        }
    }
    Py_DECREF(q);
    return rc;
}

static PyObject *StepCore_exit(StepCore *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError, "__exit__ takes (exc_type, exc, tb)");
        return NULL;
    }
    if (!configured()) return NULL;
    if (!self->has_t0 || self->has_lat) Py_RETURN_FALSE; /* never opened, or already closed */
    self->lat = now_ns() - self->t0;
    self->has_lat = 1;
    PyObject *tok = self->token;
    if (tok != NULL) {
        self->token = NULL;
        if (PyContextVar_Reset(g_current_step, tok) < 0) {
            /* closed in another context (a generator finished elsewhere) */
            if (!PyErr_ExceptionMatches(PyExc_ValueError)) {
                Py_DECREF(tok);
                return NULL;
            }
            PyErr_Clear();
            PyObject *t2 = PyContextVar_Set(g_current_step, Py_None);
            if (t2 == NULL) {
                Py_DECREF(tok);
                return NULL;
            }
            Py_DECREF(t2);
        }
        Py_DECREF(tok);
    }
    if (args[0] != Py_None) {
        PyObject *r = PyObject_CallMethodOneArg((PyObject *)self, s_failed, args[0]);
        if (r == NULL) return NULL;
        Py_DECREF(r);
    }
    if (queue_step(self) < 0) return NULL;
    Py_RETURN_FALSE;
}

static PyObject *StepCore_taken(StepCore *self, PyObject *unused) {
    if (!PyObject_GC_IsTracked((PyObject *)self)) PyObject_GC_Track((PyObject *)self);
    Py_RETURN_NONE;
}

static PyMethodDef StepCore_methods[] = {
    {"_taken", (PyCFunction)StepCore_taken, METH_NOARGS,
     "The transport took the step off the queue: the cyclic GC sees it again."},
    {"__enter__", (PyCFunction)StepCore_enter, METH_NOARGS, "Opens the step (see step.py)."},
    {"__exit__", (PyCFunction)(void (*)(void))StepCore_exit, METH_FASTCALL,
     "Closes the step and queues it (see step.py)."},
    {NULL},
};

static PyMemberDef StepCore_members[] = {
    {"run", T_OBJECT, offsetof(StepCore, run), 0, NULL},
    {"kind", T_OBJECT, offsetof(StepCore, kind), 0, NULL},
    {"name", T_OBJECT, offsetof(StepCore, name), 0, NULL},
    {"attrs", T_OBJECT, offsetof(StepCore, attrs), 0, NULL},
    {"_parent", T_OBJECT, offsetof(StepCore, parent), 0, NULL},
    {"_token", T_OBJECT, offsetof(StepCore, token), 0, NULL},
    {"_n", T_OBJECT, offsetof(StepCore, n), 0, NULL},
    {NULL},
};

static PyGetSetDef StepCore_getset[] = {
    {"_t0", (getter)StepCore_get_t0, (setter)StepCore_set_t0, NULL, NULL},
    {"_lat", (getter)StepCore_get_lat, (setter)StepCore_set_lat, NULL, NULL},
    {NULL},
};

static PyTypeObject StepCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agentstream.producer._speedups.StepCore",
    .tp_basicsize = sizeof(StepCore),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The C core of a step: its fields, __init__, __enter__ and __exit__.",
    .tp_traverse = (traverseproc)StepCore_traverse,
    .tp_clear = (inquiry)StepCore_clear,
    .tp_dealloc = (destructor)StepCore_dealloc,
    .tp_init = (initproc)StepCore_init,
    .tp_new = PyType_GenericNew,
    .tp_methods = StepCore_methods,
    .tp_members = StepCore_members,
    .tp_getset = StepCore_getset,
};

/* --- Run.step ---------------------------------------------------------------------------- */
static PyObject *slow_step(PyObject *self, PyObject *args, PyObject *kw) {
    Py_ssize_t n = PyTuple_GET_SIZE(args);
    PyObject *full = PyTuple_New(n + 1);
    if (full == NULL) return NULL;
    Py_INCREF(self);
    PyTuple_SET_ITEM(full, 0, self);
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = PyTuple_GET_ITEM(args, i);
        Py_INCREF(a);
        PyTuple_SET_ITEM(full, i + 1, a);
    }
    PyObject *r = PyObject_Call(g_slow_step, full, kw);
    Py_DECREF(full);
    return r;
}

static PyObject *RunCore_step(PyObject *self, PyObject *args, PyObject *kw) {
    if (!configured()) return NULL;
    Py_ssize_t na = PyTuple_GET_SIZE(args);
    if (na < 2 || na > 3) return slow_step(self, args, kw);
    /* attempt= and retry_of= given as None mean "not given", as in Run.step: only a value
     * takes the Python path, and a None is kept out of the step's attributes below */
    int given_none = 0;
    if (kw != NULL && PyDict_GET_SIZE(kw)) {
        PyObject *opt[2] = {s_attempt, s_retry_of};
        for (int i = 0; i < 2; i++) {
            PyObject *v = PyDict_GetItemWithError(kw, opt[i]);
            if (v == NULL && PyErr_Occurred()) return NULL;
            if (v != NULL && v != Py_None) return slow_step(self, args, kw);
            given_none |= v != NULL;
        }
    }
    PyObject *kind = PyDict_GetItemWithError(g_kinds, PyTuple_GET_ITEM(args, 0));
    if (kind == NULL) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_TypeError)) return NULL;
            PyErr_Clear(); /* an unhashable kind: the Python path maps it to CUSTOM */
        }
        return slow_step(self, args, kw);
    }
    PyObject *attributes = na == 3 ? PyTuple_GET_ITEM(args, 2) : Py_None;
    PyObject *attrs = NULL;
    if (attributes != Py_None) {
        if (!PyDict_CheckExact(attributes)) return slow_step(self, args, kw);
        attrs = PyDict_Copy(attributes); /* so mutating it later does not change the event */
        if (attrs == NULL) return NULL;
        if (kw != NULL && PyDict_GET_SIZE(kw) && PyDict_Update(attrs, kw) < 0) {
            Py_DECREF(attrs);
            return NULL;
        }
    } else if (kw != NULL && PyDict_GET_SIZE(kw)) {
        attrs = PyDict_Copy(kw);
        if (attrs == NULL) return NULL;
    }
    if (given_none && attrs != NULL) {
        PyObject *opt[2] = {s_attempt, s_retry_of};
        for (int i = 0; i < 2; i++) {
            int has = PyDict_Contains(attrs, opt[i]);
            if (has < 0 || (has && PyDict_DelItem(attrs, opt[i]) < 0)) {
                Py_DECREF(attrs);
                return NULL;
            }
        }
    }
    if (attrs != NULL && PyDict_GET_SIZE(attrs) == 0) Py_CLEAR(attrs);
    PyTypeObject *tp = (PyTypeObject *)g_step_type;
    StepCore *s = (StepCore *)tp->tp_alloc(tp, 0);
    if (s == NULL) {
        Py_XDECREF(attrs);
        return NULL;
    }
    Py_INCREF(self);
    s->run = self;
    Py_INCREF(kind);
    s->kind = kind;
    s->name = PyTuple_GET_ITEM(args, 1);
    Py_INCREF(s->name);
    s->attrs = attrs;
    return (PyObject *)s;
}

static PyMethodDef RunCore_methods[] = {
    {"step", (PyCFunction)(void (*)(void))RunCore_step, METH_VARARGS | METH_KEYWORDS,
     "step(kind, name, attributes=None, /, *, attempt=None, retry_of=None, **attrs) -> Step\n\n"
     "See Run.step in run.py: the same call, with the common case in C."},
    {NULL},
};

static PyTypeObject RunCoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "agentstream.producer._speedups.RunCore",
    .tp_basicsize = sizeof(PyObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "Run.step's common case in C; the rest of Run is Python.",
    .tp_new = PyType_GenericNew,
    .tp_methods = RunCore_methods,
};

/* --- configure ---------------------------------------------------------------------------- */
static PyObject *configure(PyObject *mod, PyObject *args) {
    PyObject *cv, *st, *kinds, *slow;
    long llm;
    if (!PyArg_ParseTuple(args, "OOO!lO:configure", &cv, &st, &PyDict_Type, &kinds, &llm, &slow))
        return NULL;
    if (!PyContextVar_CheckExact(cv)) {
        PyErr_SetString(PyExc_TypeError, "current_step must be a ContextVar");
        return NULL;
    }
    if (!PyType_Check(st) || !PyType_IsSubtype((PyTypeObject *)st, &StepCoreType)) {
        PyErr_SetString(PyExc_TypeError, "step_type must subclass StepCore");
        return NULL;
    }
    Py_INCREF(cv);
    Py_XSETREF(g_current_step, cv);
    Py_INCREF(st);
    Py_XSETREF(g_step_type, st);
    Py_INCREF(kinds);
    Py_XSETREF(g_kinds, kinds);
    Py_INCREF(slow);
    Py_XSETREF(g_slow_step, slow);
    g_llm_kind = llm;
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(current_step, step_type, kinds, llm_kind, slow_step): wires the Python side."},
    {NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "_speedups", "The step hot path in C (see step.py).", -1, module_methods,
};

#define INTERN(var, text) \
    if ((var = PyUnicode_InternFromString(text)) == NULL) return NULL;

PyMODINIT_FUNC PyInit__speedups(void) {
    INTERN(s_gate, "_gate");
    INTERN(s_step_count, "step_count");
    INTERN(s_llm_calls, "llm_calls");
    INTERN(s_q, "_q");
    INTERN(s_qmax, "_qmax");
    INTERN(s_t, "_t");
    INTERN(s_overflow, "overflow");
    INTERN(s_append, "append");
    INTERN(s_failed, "_failed");
    INTERN(s_enter_gated, "_enter_gated");
    INTERN(s_attempt, "attempt");
    INTERN(s_retry_of, "retry_of");
    if ((s_one = PyLong_FromLong(1)) == NULL) return NULL;
    if (PyType_Ready(&StepCoreType) < 0 || PyType_Ready(&RunCoreType) < 0) return NULL;
    PyObject *m = PyModule_Create(&moduledef);
    if (m == NULL) return NULL;
    Py_INCREF(&StepCoreType);
    if (PyModule_AddObject(m, "StepCore", (PyObject *)&StepCoreType) < 0) return NULL;
    Py_INCREF(&RunCoreType);
    if (PyModule_AddObject(m, "RunCore", (PyObject *)&RunCoreType) < 0) return NULL;
    return m;
}
