/* The text half of sink/_eventrows.c: an output buffer, strict UTF-8 validation, and the JSON
 * text of the payload column exactly as sink/rows.py payload_json() writes it (orjson with
 * sorted keys, then U+2028/U+2029 escaped). Plain C, no Python API: it runs without the GIL.
 *
 * What has to agree with Python, and how it is held to it (tests/unit/sink/test_event_rows.py):
 * - UTF-8: what Python's strict decoder accepts (no overlong forms, no surrogates, nothing past
 *   U+10FFFF), since fastavro decodes every string that way and refuses a record otherwise;
 * - strings: orjson escapes '"', '\\' and the C0 controls (\b \t \n \f \r short, the rest as
 *   \u00xx in lowercase hex) and leaves everything else, '/' and DEL included, as it is;
 * - doubles: orjson's shortest round-trip digits, written in fixed notation for decimal
 *   exponents -5..15 and as d[.ddd]e+X / e-X otherwise; NaN and infinities as null. The digits
 *   come from printf's correctly rounded %.*e at the least precision that strtod reads back
 *   to the same double; at an exact power of two the shortest digits may lie one unit off that
 *   rounding (the gap below is half the gap above), so those neighbours are tried too. The test
 *   compares with orjson over every power of two and a million random bit patterns.
 */
#ifndef AGENTSTREAM_EVENTROWS_TEXT_H
#define AGENTSTREAM_EVENTROWS_TEXT_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *b;
    size_t n, cap;
    int oom;
} Buf;

static int buf_grow_slow(Buf *o, size_t need) {
    size_t cap = o->cap * 2 + 256;
    if (cap < o->n + need) cap = o->n + need + 256;
    unsigned char *b = realloc(o->b, cap);  /* plain realloc: runs without the GIL */
    if (!b) { o->oom = 1; return -1; }
    o->b = b; o->cap = cap;
    return 0;
}

static inline int buf_need(Buf *o, size_t k) {
    return o->n + k <= o->cap ? 0 : buf_grow_slow(o, k);
}

static inline void buf_put(Buf *o, const void *src, size_t k) {
    if (!k || buf_need(o, k)) return;  /* an empty string's pointer may be NULL: no memcpy */
    memcpy(o->b + o->n, src, k);
    o->n += k;
}

#define BUF_LIT(o, s) buf_put((o), (s), sizeof(s) - 1)

static inline void buf_byte(Buf *o, unsigned char x) {
    if (buf_need(o, 1)) return;
    o->b[o->n++] = x;
}

static inline void buf_varuint(Buf *o, uint64_t x) {
    if (buf_need(o, 10)) return;
    while (x >= 0x80) { o->b[o->n++] = (unsigned char)(x | 0x80); x >>= 7; }
    o->b[o->n++] = (unsigned char)x;
}

/* Strict UTF-8, as Python's decoder: 1 if valid. */
static int utf8_valid(const unsigned char *s, int64_t n) {
    int64_t i = 0;
    while (i < n) {
        while (i + 8 <= n) {  /* ASCII runs, 8 bytes at a time */
            uint64_t w;
            memcpy(&w, s + i, 8);
            if (w & 0x8080808080808080ULL) break;
            i += 8;
        }
        if (i >= n) break;
        unsigned char c = s[i];
        if (c < 0x80) { i++; continue; }
        int k;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) k = 1;
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; if (c == 0xE0) lo = 0xA0; else if (c == 0xED) hi = 0x9F; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; if (c == 0xF0) lo = 0x90; else if (c == 0xF4) hi = 0x8F; }
        else return 0;
        if (i + k >= n) return 0;  /* the sequence runs past the end */
        if (s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (int j = 2; j <= k; j++)
            if ((s[i + j] & 0xC0) != 0x80) return 0;
        i += k + 1;
    }
    return 1;
}

/* A JSON string (the input is valid UTF-8), escaped as payload_json() does. */
static void json_string(Buf *o, const unsigned char *s, int64_t n) {
    static const char hex[] = "0123456789abcdef";
    buf_byte(o, '"');
    int64_t run = 0;  /* start of the bytes not yet copied */
    for (int64_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        const char *esc = NULL;
        char u[6];
        size_t elen = 2;
        if (c >= 0x20 && c != '"' && c != '\\' && c != 0xE2) continue;
        if (c == 0xE2) {  /* U+2028 / U+2029: E2 80 A8 / E2 80 A9 */
            if (i + 2 < n && s[i + 1] == 0x80 && (s[i + 2] == 0xA8 || s[i + 2] == 0xA9)) {
                buf_put(o, s + run, (size_t)(i - run));
                BUF_LIT(o, "\\u202");
                buf_byte(o, s[i + 2] == 0xA8 ? '8' : '9');
                i += 2;
                run = i + 1;
            }
            continue;
        }
        switch (c) {
            case '"': esc = "\\\""; break;
            case '\\': esc = "\\\\"; break;
            case '\b': esc = "\\b"; break;
            case '\t': esc = "\\t"; break;
            case '\n': esc = "\\n"; break;
            case '\f': esc = "\\f"; break;
            case '\r': esc = "\\r"; break;
            default:
                u[0] = '\\'; u[1] = 'u'; u[2] = '0'; u[3] = '0'; u[4] = hex[c >> 4]; u[5] = hex[c & 15];
                esc = u; elen = 6;
        }
        buf_put(o, s + run, (size_t)(i - run));
        buf_put(o, esc, elen);
        run = i + 1;
    }
    buf_put(o, s + run, (size_t)(n - run));
    buf_byte(o, '"');
}

static void json_int(Buf *o, int64_t v) {
    char t[24];
    int k = snprintf(t, sizeof t, "%lld", (long long)v);
    buf_put(o, t, (size_t)k);
}

/* digits of x (x finite, > 0) at precision p, as "%.*e" gives them: d[.ddd]e±XX */
static int exp_digits(double x, int p, char *digits, int *ndig, int *e10) {
    char t[40];
    snprintf(t, sizeof t, "%.*e", p - 1, x);
    int n = 0;
    const char *q = t;
    for (; *q && *q != 'e'; q++)
        if (*q >= '0' && *q <= '9') digits[n++] = *q;
    *ndig = n;
    *e10 = atoi(q + 1);
    return 0;
}

static double digits_value(const char *digits, int n, int e10) {
    char t[48];
    int k = 0;
    for (int i = 0; i < n; i++) t[k++] = digits[i];
    k += snprintf(t + k, sizeof t - (size_t)k, "e%d", e10 - (n - 1));
    t[k] = 0;
    return strtod(t, NULL);
}

/* one unit in the last of n digits up (+1) or down (-1); 0 if it leaves n digits */
static int step_digits(char *d, int n, int *e10, int dir) {
    int i = n - 1;
    if (dir > 0) {
        while (i >= 0 && d[i] == '9') d[i--] = '0';
        if (i < 0) { d[0] = '1'; for (int j = 1; j < n; j++) d[j] = '0'; (*e10)++; return 1; }
        d[i]++;
    } else {
        while (i >= 0 && d[i] == '0') d[i--] = '9';
        if (i < 0) return 0;
        d[i]--;
        if (d[0] == '0') {  /* 1000 -> 0999: one digit fewer at this exponent */
            if (n == 1) return 0;
            memmove(d, d + 1, (size_t)(n - 1));
            d[n - 1] = '9';
            (*e10)--;
        }
    }
    return 1;
}

static void json_double(Buf *o, double x) {
    if (!isfinite(x)) { BUF_LIT(o, "null"); return; }
    if (signbit(x)) { buf_byte(o, '-'); x = -x; }
    if (x == 0) { BUF_LIT(o, "0.0"); return; }
    char d[24];
    int n = 0, e = 0, p;
    for (p = 1; p <= 17; p++) {
        exp_digits(x, p, d, &n, &e);
        if (digits_value(d, n, e) == x) break;
    }
    uint64_t bits;
    memcpy(&bits, &x, 8);
    if (p > 1 && (bits & 0xFFFFFFFFFFFFFULL) == 0) {  /* a power of two: try one digit fewer */
        for (int dir = -1; dir <= 1; dir += 2) {
            char c[24];
            int cn, ce;
            exp_digits(x, p - 1, c, &cn, &ce);
            if (step_digits(c, cn, &ce, dir) && digits_value(c, cn, ce) == x) {
                memcpy(d, c, (size_t)cn); n = cn; e = ce;
                break;
            }
        }
    }
    while (n > 1 && d[n - 1] == '0') n--;
    if (e >= -5 && e <= 15) {
        if (e >= 0) {
            for (int i = 0; i <= e; i++) buf_byte(o, i < n ? (unsigned char)d[i] : '0');
            buf_byte(o, '.');
            if (n > e + 1) buf_put(o, d + e + 1, (size_t)(n - e - 1));
            else buf_byte(o, '0');
        } else {
            BUF_LIT(o, "0.");
            for (int i = 0; i < -e - 1; i++) buf_byte(o, '0');
            buf_put(o, d, (size_t)n);
        }
        return;
    }
    buf_byte(o, (unsigned char)d[0]);
    if (n > 1) { buf_byte(o, '.'); buf_put(o, d + 1, (size_t)(n - 1)); }
    char t[8];
    int k = snprintf(t, sizeof t, "e%c%d", e > 0 ? '+' : '-', e > 0 ? e : -e);
    buf_put(o, t, (size_t)k);
}

#endif
