/* The record's text for the processors' prefilter (redaction/prefilter.py): the part of
 * _fieldreader.c that read_text adds, kept apart. Included by _fieldreader.c only, after its
 * REFUSED and FAILED codes. */
#ifndef AGENTSTREAM_FIELDREADER_TEXT_H
#define AGENTSTREAM_FIELDREADER_TEXT_H

/* The record's text, when asked for (read_text): every string value and map key, each followed
 * by a NUL, in record order; a string value that is exactly a UUID (8-4-4-4-12 hex, either
 * case) is left out, as the redaction engine exempts it. ``text_mark`` holds the text offsets
 * the two TEXT_MARK instructions saw (the span of one field's text), ``longest`` the byte length
 * of the longest string, UUIDs included; ``ends`` each string's end offset in the text (native
 * uint32, bit 31 set when it is the value of a field the program flags as an id: STRING b = 1). */
typedef struct {
    unsigned char *buf;
    Py_ssize_t len, cap;
    uint32_t *ends;        /* per string in the text: its end offset, bit 31 set for an id field's */
    Py_ssize_t nends, capends;
    Py_ssize_t text_mark[2];
    Py_ssize_t longest;
    unsigned char small[2048];
    uint32_t small_ends[128];
} Text;

static int text_add(Text *t, const unsigned char *s, Py_ssize_t n, int id) {
    if (t->len + n + 1 > (Py_ssize_t)0x7FFFFFFF) return REFUSED;  /* offsets are 31 bits */
    if (t->nends == t->capends) {
        Py_ssize_t cap = t->capends * 2;
        uint32_t *e = PyMem_Malloc((size_t)cap * sizeof(uint32_t));
        if (e == NULL) { PyErr_NoMemory(); return FAILED; }
        memcpy(e, t->ends, (size_t)t->nends * sizeof(uint32_t));
        if (t->ends != t->small_ends) PyMem_Free(t->ends);
        t->ends = e;
        t->capends = cap;
    }
    if (t->len + n + 1 > t->cap) {
        Py_ssize_t cap = (t->len + n + 1) * 2;
        unsigned char *b = PyMem_Malloc((size_t)cap);
        if (b == NULL) { PyErr_NoMemory(); return FAILED; }
        memcpy(b, t->buf, (size_t)t->len);
        if (t->buf != t->small) PyMem_Free(t->buf);
        t->buf = b;
        t->cap = cap;
    }
    memcpy(t->buf + t->len, s, (size_t)n);
    t->len += n;
    t->ends[t->nends++] = (uint32_t)t->len | (id ? 0x80000000u : 0);
    t->buf[t->len++] = 0;
    return 0;
}

static int is_hex(unsigned char c) {
    return (c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'f');
}

/* rules.UUID.fullmatch over a 36-byte string: the engine's exemption, byte for byte. */
static int is_uuid(const unsigned char *s, Py_ssize_t n) {
    if (n != 36) return 0;
    for (int i = 0; i < 36; i++) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s[i] != '-') return 0;
        } else if (!is_hex(s[i])) {
            return 0;
        }
    }
    return 1;
}

#endif
