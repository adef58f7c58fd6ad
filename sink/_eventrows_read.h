/* The reading half of sink/_eventrows.c: one framed Event record (v1 or v2), field by field in
 * its writer schema's order, every read bounds-checked; anything event_row() would reject or
 * Python would read differently refuses (``why``). Plain C, no Python API: runs without the GIL.
 */
#ifndef AGENTSTREAM_EVENTROWS_READ_H
#define AGENTSTREAM_EVENTROWS_READ_H

#include "_avro_long.h"
#include "_eventrows_text.h"

typedef struct { const unsigned char *p, *end; const char *why; Buf *keys; } In;
typedef struct { const unsigned char *p; int64_t n; } Str;      /* n < 0: null */
typedef struct { const unsigned char *p; int64_t count; } Coll;  /* where its blocks start */

#define REFUSE(c, msg) do { (c)->why = (msg); return 1; } while (0)
#define TRY(x) do { if (x) return 1; } while (0)

static const char *KINDS[] = {"RUN_START", "RUN_END", "STEP", "FAILURE", "DECISION", "QUALITY_SIGNAL",
                              "FEEDBACK", "COMMAND_ACK"};
static const char *CAPTURE[] = {"METADATA_ONLY", "REDACTED", "SECURE_REFERENCE"};
static const char *RUN_STATUS[] = {"SUCCESS", "FAILURE", "PARTIAL"};
static const char *STEP_KIND[] = {"PLAN", "RETRIEVAL", "TOOL", "LLM", "RESPOND", "HANDOFF", "APPROVAL",
                                  "GUARDRAIL", "CUSTOM"};
static const char *STEP_STATUS[] = {"OK", "ERROR", "TIMEOUT", "CANCELLED"};
static const char *FAILURE_TYPE[] = {"TOOL", "MODEL", "RETRIEVAL", "ORCHESTRATION", "POLICY", "BUDGET", "UNKNOWN"};
#define NSYM(a) ((int)(sizeof(a) / sizeof((a)[0])))

static int rd_long(In *c, int64_t *v) {
    const char *why = avro_long(&c->p, c->end, v);
    if (why) REFUSE(c, why);
    return 0;
}

static int rd_int(In *c, int64_t *v) {
    TRY(rd_long(c, v));
    if (*v < INT32_MIN || *v > INT32_MAX) REFUSE(c, "an int out of range");
    return 0;
}

static int rd_index(In *c, int n, int *v) {  /* an enum symbol or a union branch */
    int64_t x;
    TRY(rd_long(c, &x));
    if (x < 0 || x >= n) REFUSE(c, "an enum or union index out of range");
    *v = (int)x;
    return 0;
}

static int rd_str(In *c, Str *s) {
    TRY(rd_long(c, &s->n));
    if (s->n < 0 || s->n > c->end - c->p) REFUSE(c, "a string length past the end of the record");
    s->p = c->p;
    c->p += s->n;
    if (!utf8_valid(s->p, s->n)) REFUSE(c, "a string that is not UTF-8");
    return 0;
}

static int rd_opt(In *c, int *present) { return rd_index(c, 2, present); }  /* ["null", T] */

static int rd_optstr(In *c, Str *s) {
    int k;
    TRY(rd_opt(c, &k));
    if (!k) { s->p = NULL; s->n = -1; return 0; }
    return rd_str(c, s);
}

static int rd_double(In *c, double *v) {
    if (c->end - c->p < 8) REFUSE(c, "record truncated in a double");
    memcpy(v, c->p, 8);  /* little-endian, as RowBinary */
    c->p += 8;
    return 0;
}

static int rd_optdouble(In *c, int *present, double *v) {
    TRY(rd_opt(c, present));
    return *present ? rd_double(c, v) : 0;
}

static int rd_bool(In *c, int *v) {
    if (c->p >= c->end) REFUSE(c, "record truncated in a boolean");
    if (*c->p > 1) REFUSE(c, "a boolean that is not 0 or 1");
    *v = *c->p++;
    return 0;
}

/* The next block's item count (0 ends the array or map). */
static int rd_block(In *c, int64_t *count) {
    TRY(rd_long(c, count));
    if (*count < 0) {
        int64_t size;
        if (*count == INT64_MIN) REFUSE(c, "a block count out of range");
        *count = -*count;
        TRY(rd_long(c, &size));
    }
    return 0;
}

static int rd_str_array(In *c, Coll *a) {
    a->p = c->p;
    a->count = 0;
    for (int64_t k; ;) {
        TRY(rd_block(c, &k));
        if (!k) return 0;
        for (int64_t i = 0; i < k; i++) { Str s; TRY(rd_str(c, &s)); a->count++; }
    }
}

/* A map of strings (longs = 0) or of non-negative longs (longs = 1); a key given twice is
   refused: Python keeps one of them, ClickHouse's Map would keep both. */
static int rd_map(In *c, Coll *m, int longs) {
    m->p = c->p;
    m->count = 0;
    c->keys->n = 0;
    for (int64_t k; ;) {
        TRY(rd_block(c, &k));
        if (!k) return 0;
        for (int64_t i = 0; i < k; i++) {
            Str key, sv;
            TRY(rd_str(c, &key));
            const Str *seen = (const Str *)c->keys->b;
            for (int64_t j = 0; j < m->count; j++)
                if (seen[j].n == key.n && memcmp(seen[j].p, key.p, (size_t)key.n) == 0)
                    REFUSE(c, "a map key given twice");
            buf_put(c->keys, &key, sizeof key);
            if (c->keys->oom) REFUSE(c, "out of memory");
            if (longs) {
                int64_t v;
                TRY(rd_long(c, &v));
                if (v < 0) REFUSE(c, "redaction rule count is negative");
            } else {
                TRY(rd_str(c, &sv));
            }
            m->count++;
        }
    }
}

typedef struct {
    Str event_id, tenant_id, agent_id, agent_version, environment, run_id, session_id, parent_run_id,
        parent_step_id, sdk_version, policy_version, red_policy, end_user_id;
    int64_t seq, ts_us, emitted_us, retention;
    int capture_mode, kind, branch;
    Coll attributes, rule_counts;
    /* the payload's fields, by the names of sink/rows.py */
    Str s_a, s_b, s_c, s_d, role, step_id, retry_of;  /* per branch, below */
    int64_t started_us, n1, n2, n3, n4, attempt;
    double dbl, cost;
    int e, e2, flag, has_opt_dbl;
    Coll arr;
    int llm, tool, handoff, approval, fallback, content;
    Str provider, operation, request_model, response_model, request_digest;
    int64_t tok[4];
    double llm_cost;
    Coll finish_reasons, tool_calls;
    Str tool_name, call_id, args_digest, to_agent_id, to_run_id, ho_role, action_digest, decision,
        fb_source, fb_target, fb_reason, preview, reference;
    double approval_ms;
    int pss;
} Ev;

static int rd_payload(In *c, Ev *v, int v2) {
    switch (v->branch) {
    case 0:  /* RunStart */
        TRY(rd_str(c, &v->s_a)); TRY(rd_optstr(c, &v->role)); return rd_bool(c, &v->flag);
    case 1:  /* RunEnd */
        TRY(rd_index(c, NSYM(RUN_STATUS), &v->e)); TRY(rd_str(c, &v->s_a)); TRY(rd_long(c, &v->started_us));
        TRY(rd_double(c, &v->dbl)); TRY(rd_int(c, &v->n1)); TRY(rd_int(c, &v->n2));
        TRY(rd_long(c, &v->n3)); TRY(rd_long(c, &v->n4)); return rd_double(c, &v->cost);
    case 2:  /* Step */
        TRY(rd_str(c, &v->step_id)); TRY(rd_index(c, NSYM(STEP_KIND), &v->e)); TRY(rd_str(c, &v->s_a));
        TRY(rd_index(c, NSYM(STEP_STATUS), &v->e2)); TRY(rd_long(c, &v->started_us)); TRY(rd_double(c, &v->dbl));
        TRY(rd_int(c, &v->attempt)); TRY(rd_optstr(c, &v->retry_of));
        TRY(rd_opt(c, &v->llm));
        if (v->llm) {
            TRY(rd_str(c, &v->provider)); TRY(rd_str(c, &v->operation)); TRY(rd_str(c, &v->request_model));
            TRY(rd_optstr(c, &v->response_model));
            for (int i = 0; i < 4; i++) TRY(rd_long(c, &v->tok[i]));
            TRY(rd_double(c, &v->llm_cost)); TRY(rd_str_array(c, &v->finish_reasons));
            TRY(rd_str_array(c, &v->tool_calls));
            if (v2) TRY(rd_optstr(c, &v->request_digest)); else v->request_digest.n = -1;
        }
        TRY(rd_opt(c, &v->tool));
        if (v->tool) { TRY(rd_str(c, &v->tool_name)); TRY(rd_optstr(c, &v->call_id)); TRY(rd_optstr(c, &v->args_digest)); }
        TRY(rd_opt(c, &v->handoff));
        if (v->handoff) { TRY(rd_str(c, &v->to_agent_id)); TRY(rd_optstr(c, &v->to_run_id)); TRY(rd_optstr(c, &v->ho_role)); }
        TRY(rd_opt(c, &v->approval));
        if (v->approval) { TRY(rd_str(c, &v->action_digest)); TRY(rd_str(c, &v->decision)); TRY(rd_double(c, &v->approval_ms)); }
        TRY(rd_opt(c, &v->fallback));
        if (v->fallback) {
            TRY(rd_str(c, &v->fb_source)); TRY(rd_str(c, &v->fb_target)); TRY(rd_str(c, &v->fb_reason));
            TRY(rd_bool(c, &v->pss));
        }
        TRY(rd_opt(c, &v->content));
        if (v->content) { TRY(rd_optstr(c, &v->preview)); TRY(rd_optstr(c, &v->reference)); }
        return 0;
    case 3:  /* Failure */
        TRY(rd_index(c, NSYM(FAILURE_TYPE), &v->e)); TRY(rd_str(c, &v->s_a)); TRY(rd_optstr(c, &v->step_id));
        TRY(rd_optstr(c, &v->s_b)); return rd_bool(c, &v->flag);
    case 4:  /* Decision */
        TRY(rd_str(c, &v->s_a)); TRY(rd_str(c, &v->s_b)); TRY(rd_str_array(c, &v->arr)); TRY(rd_str(c, &v->s_c));
        TRY(rd_optdouble(c, &v->has_opt_dbl, &v->dbl)); return rd_optstr(c, &v->step_id);
    case 5:  /* QualitySignal */
        TRY(rd_str(c, &v->s_a)); TRY(rd_str(c, &v->s_b)); TRY(rd_bool(c, &v->flag));
        TRY(rd_optdouble(c, &v->has_opt_dbl, &v->dbl)); return rd_optstr(c, &v->step_id);
    case 6:  /* Feedback */
        TRY(rd_str(c, &v->s_a)); TRY(rd_str(c, &v->s_b)); TRY(rd_str(c, &v->s_c)); return rd_str(c, &v->s_d);
    default:  /* CommandAck */
        TRY(rd_str(c, &v->s_a)); TRY(rd_str(c, &v->s_b)); TRY(rd_str(c, &v->s_c)); return rd_optstr(c, &v->s_d);
    }
}

/* schemas/id_format.py is_storable_id: at most 1,024 bytes, no ASCII blank or control byte (a
   UTF-8 multi-byte sequence holds none). Empty (or null) is not judged here. */
static int id_shaped(const Str *s) {
    if (s->n <= 0) return 1;
    if (s->n > 1024) return 0;
    for (int64_t i = 0; i < s->n; i++) {
        unsigned char ch = s->p[i];
        if (ch <= 0x20 || ch == 0x7f) return 0;
    }
    return 1;
}

/* schemas/usage_numbers.py is_duration_ms (NaN fails both comparisons) and is_token_count */
#define DURATION_MS_MAX 2592000000.0
#define TOKENS_MAX 1099511627776LL
static int is_duration(double ms) { return ms >= 0.0 && ms <= DURATION_MS_MAX; }

/* One record, framing and trailer included: [sink_head fixed(5)] Event [retention int] [mark] */
static int rd_event(In *c, Ev *v, int v2) {
    int k;
    if (c->end - c->p < 5) REFUSE(c, "record truncated in its framing");
    c->p += 5;
    TRY(rd_str(c, &v->event_id)); TRY(rd_str(c, &v->tenant_id)); TRY(rd_str(c, &v->agent_id));
    TRY(rd_str(c, &v->agent_version)); TRY(rd_str(c, &v->environment)); TRY(rd_str(c, &v->run_id));
    TRY(rd_optstr(c, &v->session_id)); TRY(rd_optstr(c, &v->parent_run_id)); TRY(rd_optstr(c, &v->parent_step_id));
    TRY(rd_long(c, &v->seq)); TRY(rd_long(c, &v->ts_us)); TRY(rd_long(c, &v->emitted_us));
    TRY(rd_str(c, &v->sdk_version)); TRY(rd_index(c, NSYM(CAPTURE), &v->capture_mode));
    TRY(rd_str(c, &v->policy_version)); TRY(rd_map(c, &v->attributes, 0));
    TRY(rd_opt(c, &k));
    v->rule_counts.p = NULL; v->rule_counts.count = 0;
    if (k) { TRY(rd_str(c, &v->red_policy)); TRY(rd_map(c, &v->rule_counts, 1)); }
    TRY(rd_index(c, NSYM(KINDS), &v->kind));
    TRY(rd_index(c, 8, &v->branch));
    TRY(rd_payload(c, v, v2));
    if (v2) TRY(rd_optstr(c, &v->end_user_id)); else v->end_user_id.n = -1;
    TRY(rd_int(c, &v->retention));
    if (c->end - c->p < 4 || memcmp(c->p, "AGS1", 4) != 0) REFUSE(c, "the record's length is not what its schema says");
    c->p += 4;
    /* event_row()'s own rejections */
    if (v->branch != v->kind) REFUSE(c, "a payload branch other than the one its kind names");
    if (v->seq < 0 || v->seq > 4294967295LL) REFUSE(c, "seq out of range");
    if (!v->tenant_id.n || !v->run_id.n || !v->event_id.n) REFUSE(c, "an empty tenant_id, run_id or event_id");
    if (!id_shaped(&v->event_id) || !id_shaped(&v->run_id) || !id_shaped(&v->session_id)
        || !id_shaped(&v->parent_run_id) || !id_shaped(&v->parent_step_id))
        REFUSE(c, "an id that is not an id (at most 1,024 bytes, no blank or control character)");
    if (v->kind == 1 && !is_duration(v->dbl)) REFUSE(c, "run duration_ms is not a duration of 0 to 30 days");
    if (v->kind == 2) {
        if (!is_duration(v->dbl)) REFUSE(c, "step latency_ms is not a duration of 0 to 30 days");
        if (v->approval && !is_duration(v->approval_ms)) REFUSE(c, "approval_latency_ms is not a duration of 0 to 30 days");
        if (v->attempt < 0 || v->attempt > 65535) REFUSE(c, "step attempt out of range");
        if (v->llm) {
            for (int i = 0; i < 4; i++)
                if (v->tok[i] < 0 || v->tok[i] > TOKENS_MAX) REFUSE(c, "llm token count is outside 0..2^40");
            /* schemas/usage_numbers.py is_cost: NaN fails both comparisons */
            if (!(v->llm_cost >= 0.0 && v->llm_cost < INFINITY)) REFUSE(c, "llm cost_usd is not a finite cost >= 0");
        }
    }
    if (v->retention < 1 || v->retention > 65535) REFUSE(c, "retention out of range");
    return 0;
}

#endif
