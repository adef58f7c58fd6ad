/* Avro's zigzag varint, read bounds-checked: shared by the sink's two C readers
 * (sink/_rowbinary.c, sink/_eventrows_read.h). Plain C: runs without the GIL. */
#ifndef AGENTSTREAM_AVRO_LONG_H
#define AGENTSTREAM_AVRO_LONG_H

#include <stdint.h>

/* Reads one long at *p (advancing it); NULL, or why the bytes are not one. */
static inline __attribute__((always_inline)) const char *avro_long(const unsigned char **p,
                                                                 const unsigned char *end, int64_t *v) {
    const unsigned char *q = *p;
    if (q < end && !(*q & 0x80)) {  /* one byte: most lengths, indexes and counts */
        uint64_t x = *q;
        *p = q + 1;
        *v = (int64_t)((x >> 1) ^ (~(x & 1) + 1));
        return NULL;
    }
    uint64_t x = 0;
    for (int shift = 0; shift < 70; shift += 7) {
        if (q >= end) return "record truncated in a varint";
        unsigned char b = *q++;
        x |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) { *p = q; *v = (int64_t)((x >> 1) ^ (~(x & 1) + 1)); return NULL; }
    }
    return "varint longer than 10 bytes";
}

#endif
