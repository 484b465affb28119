/*
 * Singer RECORD lines -> PostgreSQL COPY text rows, without Python objects per row.
 *
 * A Router reads one input line, checks it is a well-formed RECORD of a registered stream and
 * appends the row to that stream's Encoder buffer. Anything it is not sure about (malformed JSON,
 * an unknown stream, a value the column would get differently from the decoded path, a NUL) makes
 * feed() return 0 and leaves the buffer untouched: the caller then takes the line through the
 * ordinary decoding path, which either loads it with Encoder.add() or raises the precise error.
 * The rule that keeps both paths equal: feed() only handles what it renders byte for byte as the
 * decoded path would render the value psycopg-style, or as the server would parse it the same.
 *
 * Numbers are copied as they came, so no digit is lost to a float.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <string.h>
#include <time.h>

enum { KIND_TEXT = 0, KIND_INT, KIND_FLOAT, KIND_DECIMAL, KIND_BOOL, KIND_JSON };
enum { NUL_STRIP = 0, NUL_REPLACE, NUL_FAIL };
enum { FEED_NO = 0, FEED_ADDED = 1, FEED_FULL = 2 };
#define MAX_DEPTH 500

/* -- growable byte buffer ------------------------------------------------------------------ */
typedef struct {
    char *data;
    Py_ssize_t len, cap;
} Buf;

static int buf_grow(Buf *b, Py_ssize_t extra) {
    Py_ssize_t want = b->len + extra, cap = b->cap ? b->cap : 4096;
    while (cap < want) cap *= 2;
    char *data = PyMem_Realloc(b->data, (size_t)cap);
    if (!data) { PyErr_NoMemory(); return -1; }
    b->data = data;
    b->cap = cap;
    return 0;
}

static inline int buf_put(Buf *b, const char *s, Py_ssize_t n) {
    if (n == 0) return 0; /* an empty value into a buffer not allocated yet: memcpy wants no NULL */
    if (b->len + n > b->cap && buf_grow(b, n) < 0) return -1;
    memcpy(b->data + b->len, s, (size_t)n);
    b->len += n;
    return 0;
}

static inline int buf_putc(Buf *b, char c) {
    if (b->len + 1 > b->cap && buf_grow(b, 1) < 0) return -1;
    b->data[b->len++] = c;
    return 0;
}

static void buf_free(Buf *b) { PyMem_Free(b->data); b->data = NULL; b->len = b->cap = 0; }

/* Bytes COPY text needs escaped: backslash, newline, carriage return, tab (the delimiter). */
static int put_copy_escaped(Buf *b, const char *s, Py_ssize_t n) {
    if (n == 0) return 0;
    if (b->len + 2 * n > b->cap && buf_grow(b, 2 * n) < 0) return -1;
    char *o = b->data + b->len;
    for (Py_ssize_t i = 0; i < n; i++) {
        char c = s[i];
        switch (c) {
            case '\\': *o++ = '\\'; *o++ = '\\'; break;
            case '\n': *o++ = '\\'; *o++ = 'n'; break;
            case '\r': *o++ = '\\'; *o++ = 'r'; break;
            case '\t': *o++ = '\\'; *o++ = 't'; break;
            default: *o++ = c;
        }
    }
    b->len = o - b->data;
    return 0;
}

/* -- JSON scanning ---------------------------------------------------------------------------- */
typedef const unsigned char *P;

static inline P skip_ws(P p, P e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

static int hexval(unsigned char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(P p, P e) {
    if (e - p < 4) return -1;
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p[i]);
        if (h < 0) return -1;
        v = v * 16 + h;
    }
    return v;
}

/* Length of the valid UTF-8 sequence at p (2..4), or 0 when it is not valid UTF-8. */
static int utf8_seq(P p, P e) {
    unsigned char c = p[0];
    if (c >= 0xC2 && c <= 0xDF) return (e - p >= 2 && (p[1] & 0xC0) == 0x80) ? 2 : 0;
    if (c >= 0xE0 && c <= 0xEF) {
        if (e - p < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80) return 0;
        if (c == 0xE0 && p[1] < 0xA0) return 0; /* overlong */
        if (c == 0xED && p[1] >= 0xA0) return 0; /* surrogate */
        return 3;
    }
    if (c >= 0xF0 && c <= 0xF4) {
        if (e - p < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
        if (c == 0xF0 && p[1] < 0x90) return 0;
        if (c == 0xF4 && p[1] >= 0x90) return 0;
        return 4;
    }
    return 0;
}

static int put_utf8(Buf *b, unsigned int cp) {
    char tmp[4];
    int n;
    if (cp < 0x80) { tmp[0] = (char)cp; n = 1; }
    else if (cp < 0x800) { tmp[0] = (char)(0xC0 | (cp >> 6)); tmp[1] = (char)(0x80 | (cp & 0x3F)); n = 2; }
    else if (cp < 0x10000) {
        tmp[0] = (char)(0xE0 | (cp >> 12)); tmp[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        tmp[2] = (char)(0x80 | (cp & 0x3F)); n = 3;
    } else {
        tmp[0] = (char)(0xF0 | (cp >> 18)); tmp[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        tmp[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); tmp[3] = (char)(0x80 | (cp & 0x3F)); n = 4;
    }
    return buf_put(b, tmp, n);
}

/* Bytes that end a plain run inside a string: quote, backslash, control characters, non-ASCII. */
static unsigned char STRING_STOP[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++) STRING_STOP[c] = (c == '"' || c == '\\' || c < 0x20 || c >= 0x80);
}

#define STR_HAS_NUL 1
#define STR_INVALID 2

/*
 * Scan the string starting after its opening quote. With `out`, append its decoded value
 * (COPY-escaped when `copy` is set). Returns the position after the closing quote, or NULL
 * (with *flags) when the string is invalid or holds a NUL; a NUL stops a decode, not a skip.
 */
static P scan_string(P p, P e, Buf *out, int copy, int *flags) {
    for (;;) {
        P run = p;
        while (p < e && !STRING_STOP[*p]) p++;
        if (out && p > run && buf_put(out, (const char *)run, p - run) < 0) { *flags = STR_INVALID; return NULL; }
        if (p >= e) { *flags = STR_INVALID; return NULL; }
        unsigned char c = *p;
        if (c == '"') return p + 1;
        if (c < 0x20) { *flags = STR_INVALID; return NULL; }
        if (c >= 0x80) {
            int n = utf8_seq(p, e);
            if (!n) { *flags = STR_INVALID; return NULL; }
            if (out && buf_put(out, (const char *)p, n) < 0) { *flags = STR_INVALID; return NULL; }
            p += n;
            continue;
        }
        /* a backslash escape */
        if (e - p < 2) { *flags = STR_INVALID; return NULL; }
        unsigned char x = p[1];
        const char *plain = NULL;
        char one = 0;
        switch (x) {
            case '"': one = '"'; break;
            case '/': one = '/'; break;
            case '\\': one = '\\'; plain = "\\\\"; break;
            case 'b': one = '\b'; break;
            case 'f': one = '\f'; break;
            case 'n': one = '\n'; plain = "\\n"; break;
            case 'r': one = '\r'; plain = "\\r"; break;
            case 't': one = '\t'; plain = "\\t"; break;
            case 'u': break;
            default: *flags = STR_INVALID; return NULL;
        }
        if (x != 'u') {
            if (out) {
                int rc = (copy && plain) ? buf_put(out, plain, 2) : buf_putc(out, one);
                if (rc < 0) { *flags = STR_INVALID; return NULL; }
            }
            p += 2;
            continue;
        }
        int cp = read_hex4(p + 2, e);
        if (cp < 0) { *flags = STR_INVALID; return NULL; }
        p += 6;
        if (cp >= 0xD800 && cp <= 0xDBFF) {
            int lo = (e - p >= 6 && p[0] == '\\' && p[1] == 'u') ? read_hex4(p + 2, e) : -1;
            if (lo < 0xDC00 || lo > 0xDFFF) { *flags = STR_INVALID; return NULL; }
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            *flags = STR_INVALID;
            return NULL;
        }
        if (cp == 0) {
            *flags |= STR_HAS_NUL;
            if (out) return NULL; /* the decoded path applies the NUL policy */
            continue;
        }
        if (out) {
            int rc;
            if (copy && cp == '\\') rc = buf_put(out, "\\\\", 2);
            else if (copy && cp == '\n') rc = buf_put(out, "\\n", 2);
            else if (copy && cp == '\r') rc = buf_put(out, "\\r", 2);
            else if (copy && cp == '\t') rc = buf_put(out, "\\t", 2);
            else rc = put_utf8(out, (unsigned int)cp);
            if (rc < 0) { *flags = STR_INVALID; return NULL; }
        }
    }
}

#define NUM_FRACTION 1 /* has a fraction or an exponent: Python would have made it a float */
#define NUM_NEG_ZERO 2 /* "-0": Python prints it as 0 */
#define NUM_BIG 4      /* more digits than 64 bits hold: orjson makes it a float */
#define NUM_TINY 8     /* not zero, but below 1e-306: a double may round it to 0 */

/* True when the number's text is past the largest double (orjson refuses it as infinite). */
static int overflows_double(P start, P end) {
    char text[64];
    if (end - start >= (Py_ssize_t)sizeof(text)) return 1; /* a long spelling near the limit: not ours */
    memcpy(text, start, (size_t)(end - start));
    text[end - start] = 0;
    double v = PyOS_string_to_double(text, NULL, NULL); /* locale-independent, correctly rounded */
    if (v == -1.0 && PyErr_Occurred()) { PyErr_Clear(); return 1; }
    return Py_IS_INFINITY(v);
}

static P scan_number(P p, P e, int *nflags) {
    P start = p;
    Py_ssize_t int_digits = 0, frac_digits = 0, lead_zeros = 0, exponent = 0;
    int nonzero = 0;
    *nflags = 0;
    if (p < e && *p == '-') p++;
    if (p >= e) return NULL;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') {
        P digits = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        int_digits = p - digits;
        nonzero = 1;
        if (int_digits > 18) *nflags |= NUM_BIG;
    } else return NULL;
    if (p < e && *p == '.') {
        p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        P digits = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        frac_digits = p - digits;
        if (!nonzero) {
            while (digits + lead_zeros < p && digits[lead_zeros] == '0') lead_zeros++;
            nonzero = digits + lead_zeros < p;
        }
        *nflags |= NUM_FRACTION;
    }
    if (p < e && (*p == 'e' || *p == 'E')) {
        p++;
        int negative = p < e && *p == '-';
        if (p < e && (*p == '+' || *p == '-')) p++;
        if (p >= e || *p < '0' || *p > '9') return NULL;
        /* Saturated: 10^9 is past any double either way, and past any line's count of digits. */
        for (; p < e && *p >= '0' && *p <= '9'; p++)
            exponent = exponent < 100000000 ? exponent * 10 + (*p - '0') : 1000000000;
        if (negative) exponent = -exponent;
        *nflags |= NUM_FRACTION;
    }
    if (p - start == 2 && start[0] == '-' && start[1] == '0') *nflags |= NUM_NEG_ZERO; /* only the integer -0 */
    /* numeric and jsonb refuse more than 16383 digits after the point (1e-16384), where the decoded
       value is a float, 0.0 or not: leave it to the decoded path. */
    if (frac_digits - exponent > 16383) return NULL;
    if (nonzero) {
        /* The value is 0.d... times 10^magnitude, d not 0. orjson refuses a number a double cannot
           hold (1e400) where the server would store it in numeric or jsonb: such a line is not ours. */
        Py_ssize_t magnitude = (int_digits ? int_digits : -lead_zeros) + exponent;
        if (magnitude > 309 || (magnitude == 309 && overflows_double(start, p))) return NULL;
        if (magnitude < -306) *nflags |= NUM_TINY;
    }
    return p;
}

static P scan_literal(P p, P e, const char *word, Py_ssize_t n) {
    return (e - p >= n && memcmp(p, word, (size_t)n) == 0) ? p + n : NULL;
}

/* Validate any JSON value; *nul is set when a string in it holds \u0000. */
static P skip_value(P p, P e, int depth, int *nul) {
    if (p >= e || depth > MAX_DEPTH) return NULL;
    int flags = 0, nflags;
    switch (*p) {
        case '"':
            p = scan_string(p + 1, e, NULL, 0, &flags);
            if (flags & STR_HAS_NUL) *nul = 1;
            return p;
        case '{':
            p = skip_ws(p + 1, e);
            if (p < e && *p == '}') return p + 1;
            for (;;) {
                if (p >= e || *p != '"') return NULL;
                flags = 0;
                p = scan_string(p + 1, e, NULL, 0, &flags);
                if (!p) return NULL;
                if (flags & STR_HAS_NUL) *nul = 1;
                p = skip_ws(p, e);
                if (p >= e || *p != ':') return NULL;
                p = skip_value(skip_ws(p + 1, e), e, depth + 1, nul);
                if (!p) return NULL;
                p = skip_ws(p, e);
                if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
                if (p < e && *p == '}') return p + 1;
                return NULL;
            }
        case '[':
            p = skip_ws(p + 1, e);
            if (p < e && *p == ']') return p + 1;
            for (;;) {
                p = skip_value(p, e, depth + 1, nul);
                if (!p) return NULL;
                p = skip_ws(p, e);
                if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
                if (p < e && *p == ']') return p + 1;
                return NULL;
            }
        case 't': return scan_literal(p, e, "true", 4);
        case 'f': return scan_literal(p, e, "false", 5);
        case 'n': return scan_literal(p, e, "null", 4);
        default: return scan_number(p, e, &nflags);
    }
}

/* -- Encoder ------------------------------------------------------------------------------------ */
typedef struct {
    char *name;
    Py_ssize_t len;
    int column, kind;
    Py_ssize_t at; /* its place in declaration order */
} Field;

typedef struct {
    PyObject_HEAD
    Field *fields; /* record property -> column; an open-addressing table of `mask + 1` slots */
    Py_ssize_t mask;
    Field *order;   /* the same fields in declaration order, for the next-key guess */
    Py_ssize_t nfields;
    int ncolumns;
    int *kinds;     /* per column */
    int *keys;      /* key columns */
    int nkeys;
    int extracted_at, version_at; /* columns filled from the envelope, or -1 */
    int nul_policy;
    Py_ssize_t max_rows, max_bytes;
    PyObject *json_dumps; /* value -> str, for JSON columns in add() */
    PyObject *to_text;    /* other Python types -> str, in add() */
    PyObject *seen_keys;  /* set of key texts this batch, or NULL when not tracked */
    Buf out, scratch, keytext, keybuf; /* keytext: a row's key; keybuf: an escaped property name */
    Py_ssize_t *off, *len; /* per column: the value's bytes in scratch; len -1 = NULL */
    Py_ssize_t rows, nbytes;
    double first_at;
    int duplicates;
} Encoder;

static uint64_t hash_bytes(const char *s, Py_ssize_t n) {
    uint64_t h = 1469598103934665603ULL;
    for (Py_ssize_t i = 0; i < n; i++) { h ^= (unsigned char)s[i]; h *= 1099511628211ULL; }
    return h;
}

static Field *lookup_field(Encoder *enc, const char *s, Py_ssize_t n) {
    Py_ssize_t i = (Py_ssize_t)(hash_bytes(s, n) & (uint64_t)enc->mask);
    for (;;) {
        Field *f = &enc->fields[i];
        if (!f->name) return NULL;
        if (f->len == n && memcmp(f->name, s, (size_t)n) == 0) return f;
        i = (i + 1) & enc->mask;
    }
}

static double monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void begin_row(Encoder *enc) {
    enc->scratch.len = 0;
    for (int i = 0; i < enc->ncolumns; i++) enc->len[i] = -1;
}

/* Append the row held in scratch to the batch. -1 on a Python error. */
static int commit_row(Encoder *enc) {
    Buf *o = &enc->out;
    for (int i = 0; i < enc->ncolumns; i++) {
        if (i && buf_putc(o, '\t') < 0) return -1;
        if (enc->len[i] < 0) { if (buf_put(o, "\\N", 2) < 0) return -1; }
        else if (buf_put(o, enc->scratch.data + enc->off[i], enc->len[i]) < 0) return -1;
    }
    if (buf_putc(o, '\n') < 0) return -1;
    if (enc->seen_keys && !enc->duplicates) {
        Buf *key = &enc->keytext;
        key->len = 0;
        for (int k = 0; k < enc->nkeys; k++) {
            int c = enc->keys[k];
            if ((k && buf_putc(key, '\t') < 0) || buf_put(key, enc->scratch.data + enc->off[c], enc->len[c]) < 0)
                return -1;
        }
        PyObject *text = PyBytes_FromStringAndSize(key->data ? key->data : "", key->len);
        if (!text) return -1;
        Py_ssize_t before = PySet_GET_SIZE(enc->seen_keys);
        int rc = PySet_Add(enc->seen_keys, text);
        Py_DECREF(text);
        if (rc < 0) return -1;
        if (PySet_GET_SIZE(enc->seen_keys) == before) enc->duplicates = 1;
    }
    if (enc->rows++ == 0) enc->first_at = monotonic_now();
    return 0;
}

static int keys_present(Encoder *enc) {
    for (int k = 0; k < enc->nkeys; k++)
        if (enc->len[enc->keys[k]] < 0) return 0;
    return 1;
}

#define PARSE_NO 0   /* not handled here: the decoded path takes the line */
#define PARSE_OK 1
#define PARSE_ERR -1 /* a Python error is set */

/* Parse one value into the column's slot in scratch. */
static int parse_value(Encoder *enc, P *pp, P e, int column, int kind) {
    P p = *pp;
    Buf *s = &enc->scratch;
    Py_ssize_t start = s->len;
    int flags = 0, nflags = 0, nul = 0;
    P end;
    if (p >= e) return PARSE_NO;
    if (*p == 'n') {
        if (!(end = scan_literal(p, e, "null", 4))) return PARSE_NO;
        enc->len[column] = -1;
        *pp = end;
        return PARSE_OK;
    }
    if (kind == KIND_JSON) {
        /* The value's own JSON text: jsonb normalizes it the same as the decoded path's dump. */
        end = skip_value(p, e, 0, &nul);
        if (!end || nul) return PARSE_NO;
        if (put_copy_escaped(s, (const char *)p, end - p) < 0) return PARSE_ERR;
    } else if (*p == '"') {
        end = scan_string(p + 1, e, s, 1, &flags);
        if (!end) { if (PyErr_Occurred()) return PARSE_ERR; return PARSE_NO; }
    } else if (*p == 't' || *p == 'f') {
        int yes = *p == 't';
        if (!(end = yes ? scan_literal(p, e, "true", 4) : scan_literal(p, e, "false", 5))) return PARSE_NO;
        if (buf_putc(s, yes ? 't' : 'f') < 0) return PARSE_ERR;
    } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
        if (!(end = scan_number(p, e, &nflags))) return PARSE_NO;
        /* Into text, Python would print a float, -0 or a huge integer its own way. */
        if (kind == KIND_TEXT && nflags) return PARSE_NO;
        /* -0 is the integer 0 once decoded: float8 would keep the sign, boolean would refuse it. */
        if ((kind == KIND_FLOAT || kind == KIND_BOOL) && (nflags & NUM_NEG_ZERO)) return PARSE_NO;
        /* Decoded, 1e-400 is 0.0; written as is, float8 refuses it as out of range. */
        if (kind == KIND_FLOAT && (nflags & NUM_TINY)) return PARSE_NO;
        if (buf_put(s, (const char *)p, end - p) < 0) return PARSE_ERR;
    } else {
        return PARSE_NO; /* an object or array for a scalar column: the decoded path reports it */
    }
    enc->off[column] = start;
    enc->len[column] = s->len - start;
    *pp = end;
    return PARSE_OK;
}

/* Parse the record object at *pp into scratch (the caller began the row). */
static int parse_record(Encoder *enc, P *pp, P e) {
    P p = *pp;
    if (p >= e || *p != '{') return PARSE_NO;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}') { *pp = p + 1; return PARSE_OK; }
    Py_ssize_t guess = 0;
    Buf *keybuf = &enc->keybuf;
    int rc = PARSE_NO;
    for (;;) {
        if (p >= e || *p != '"') goto done;
        P k = ++p;
        while (p < e && !STRING_STOP[*p]) p++;
        const char *name;
        Py_ssize_t n;
        if (p < e && *p == '"') {
            name = (const char *)k;
            n = p - k;
            p++;
        } else {
            int flags = 0;
            keybuf->len = 0;
            p = scan_string(k, e, keybuf, 0, &flags);
            if (!p) { if (PyErr_Occurred()) rc = PARSE_ERR; goto done; }
            name = keybuf->data ? keybuf->data : "";
            n = keybuf->len;
        }
        p = skip_ws(p, e);
        if (p >= e || *p != ':') goto done;
        p = skip_ws(p + 1, e);
        /* Properties usually come in the schema's order: try the one after the last match first. */
        Field *f = NULL;
        if (guess < enc->nfields) {
            Field *g = &enc->order[guess];
            if (g->len == n && memcmp(g->name, name, (size_t)n) == 0) f = g;
        }
        if (!f) f = lookup_field(enc, name, n);
        if (f) {
            guess = f->at + 1; /* f may be the hash table's copy: its place, not its address */
            int r = parse_value(enc, &p, e, f->column, f->kind);
            if (r != PARSE_OK) { rc = r; goto done; }
        } else {
            int nul = 0;
            if (!(p = skip_value(p, e, 0, &nul))) goto done;
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
        if (p < e && *p == '}') { *pp = p + 1; rc = PARSE_OK; goto done; }
        goto done;
    }
done:
    return rc;
}

/* The garbage collector's view: json_dumps usually closes over the loader, which holds the Router
   that holds this Encoder; without it that cycle, and the loader with it, would never be freed. */
static int Encoder_traverse(Encoder *enc, visitproc visit, void *arg) {
    Py_VISIT(enc->json_dumps);
    Py_VISIT(enc->to_text);
    Py_VISIT(enc->seen_keys);
    return 0;
}

static int Encoder_clear(Encoder *enc) {
    Py_CLEAR(enc->json_dumps);
    Py_CLEAR(enc->to_text); /* add() refuses from now on (encoder_ready) */
    Py_CLEAR(enc->seen_keys);
    return 0;
}

static void Encoder_dealloc(Encoder *enc) {
    PyObject_GC_UnTrack(enc);
    if (enc->fields)
        for (Py_ssize_t i = 0; i <= enc->mask; i++) PyMem_Free(enc->fields[i].name);
    if (enc->order)
        for (Py_ssize_t i = 0; i < enc->nfields; i++) PyMem_Free(enc->order[i].name);
    PyMem_Free(enc->fields);
    PyMem_Free(enc->order);
    PyMem_Free(enc->kinds);
    PyMem_Free(enc->keys);
    PyMem_Free(enc->off);
    PyMem_Free(enc->len);
    buf_free(&enc->out);
    buf_free(&enc->scratch);
    buf_free(&enc->keytext);
    buf_free(&enc->keybuf);
    Encoder_clear(enc);
    Py_TYPE(enc)->tp_free((PyObject *)enc);
}

static char *copy_name(const char *s, Py_ssize_t n) {
    char *name = PyMem_Malloc((size_t)n + 1);
    if (!name) { PyErr_NoMemory(); return NULL; }
    memcpy(name, s, (size_t)n);
    name[n] = 0;
    return name;
}

/*
 * Encoder(fields, kinds, keys, extracted_at, version_at, nul_policy, max_rows, max_bytes,
 *         json_dumps, to_text, track_duplicates)
 *   fields: {record property: column index}; kinds: a kind per column; keys: key column indexes.
 */
static int Encoder_init(Encoder *enc, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"fields", "kinds", "keys", "extracted_at", "version_at", "nul_policy",
                             "max_rows", "max_bytes", "json_dumps", "to_text", "track_duplicates", NULL};
    PyObject *fields, *kinds, *keys, *json_dumps, *to_text;
    int track = 0;
    if (enc->kinds) { PyErr_SetString(PyExc_TypeError, "Encoder is initialized once"); return -1; }
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!O!O!iiinnOOp", kwlist, &PyDict_Type, &fields, &PyTuple_Type,
                                     &kinds, &PyTuple_Type, &keys, &enc->extracted_at, &enc->version_at,
                                     &enc->nul_policy, &enc->max_rows, &enc->max_bytes, &json_dumps, &to_text, &track))
        return -1;
    int ncolumns = (int)PyTuple_GET_SIZE(kinds);
    enc->ncolumns = ncolumns;
    enc->kinds = PyMem_Calloc((size_t)ncolumns + 1, sizeof(int));
    enc->off = PyMem_Calloc((size_t)ncolumns + 1, sizeof(Py_ssize_t));
    enc->len = PyMem_Calloc((size_t)ncolumns + 1, sizeof(Py_ssize_t));
    enc->nkeys = (int)PyTuple_GET_SIZE(keys);
    enc->keys = PyMem_Calloc((size_t)enc->nkeys + 1, sizeof(int));
    if (!enc->kinds || !enc->off || !enc->len || !enc->keys) { PyErr_NoMemory(); return -1; }
    for (int i = 0; i < ncolumns; i++) {
        long k = PyLong_AsLong(PyTuple_GET_ITEM(kinds, i));
        if (k < KIND_TEXT || k > KIND_JSON) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "unknown column kind");
            return -1;
        }
        enc->kinds[i] = (int)k;
    }
    for (int i = 0; i < enc->nkeys; i++) {
        long c = PyLong_AsLong(PyTuple_GET_ITEM(keys, i));
        if (c < 0 || c >= ncolumns) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "key column out of range");
            return -1;
        }
        enc->keys[i] = (int)c;
    }
    if (enc->extracted_at >= ncolumns || enc->version_at >= ncolumns) {
        PyErr_SetString(PyExc_ValueError, "metadata column out of range");
        return -1;
    }
    enc->nfields = PyDict_GET_SIZE(fields);
    Py_ssize_t size = 8;
    while (size < 2 * enc->nfields + 2) size *= 2;
    enc->mask = size - 1;
    enc->fields = PyMem_Calloc((size_t)size, sizeof(Field));
    enc->order = PyMem_Calloc((size_t)enc->nfields + 1, sizeof(Field));
    if (!enc->fields || !enc->order) { PyErr_NoMemory(); return -1; }
    PyObject *key, *value;
    Py_ssize_t pos = 0, at = 0;
    while (PyDict_Next(fields, &pos, &key, &value)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(key, &n);
        long column = PyLong_AsLong(value);
        if (!s || (column == -1 && PyErr_Occurred())) return -1;
        if (column < 0 || column >= ncolumns) { PyErr_SetString(PyExc_ValueError, "field column out of range"); return -1; }
        Field f = {NULL, n, (int)column, enc->kinds[column], at};
        Py_ssize_t i = (Py_ssize_t)(hash_bytes(s, n) & (uint64_t)enc->mask);
        while (enc->fields[i].name) i = (i + 1) & enc->mask;
        if (!(f.name = copy_name(s, n))) return -1;
        enc->fields[i] = f;
        if (!(f.name = copy_name(s, n))) return -1;
        enc->order[at++] = f;
    }
    if (track && enc->nkeys && !(enc->seen_keys = PySet_New(NULL))) return -1;
    /* Set last: an Encoder with to_text is one whose __init__ finished (see encoder_ready). */
    Py_INCREF(json_dumps);
    enc->json_dumps = json_dumps;
    Py_INCREF(to_text);
    enc->to_text = to_text;
    return 0;
}

/* False, with ValueError, for an Encoder made without __init__, whose __init__ failed, or cleared
   by the garbage collector: it has no field table or callables to use. */
static int encoder_ready(Encoder *enc) {
    if (enc->to_text) return 1;
    PyErr_SetString(PyExc_ValueError, "Encoder is not initialized");
    return 0;
}

/* -- Encoder.add: a decoded record (a dict), rendered as psycopg renders each Python type ------ */
static int put_text(Encoder *enc, const char *s, Py_ssize_t n) {
    if (!memchr(s, 0, (size_t)n)) return put_copy_escaped(&enc->scratch, s, n);
    if (enc->nul_policy == NUL_FAIL) {
        PyErr_SetString(PyExc_ValueError,
                        "a string holds a NUL character (\\u0000), which PostgreSQL cannot store; "
                        "set nul_character_policy to strip or replace");
        return -1;
    }
    for (Py_ssize_t i = 0; i < n; i++) {
        int rc;
        if (s[i]) rc = put_copy_escaped(&enc->scratch, s + i, 1);
        else rc = enc->nul_policy == NUL_REPLACE ? buf_put(&enc->scratch, "\xEF\xBF\xBD", 3) : 0;
        if (rc < 0) return -1;
    }
    return 0;
}

static int put_str_object(Encoder *enc, PyObject *text) {
    if (!text) return -1;
    if (!PyUnicode_Check(text)) {
        Py_DECREF(text);
        PyErr_SetString(PyExc_TypeError, "expected a str");
        return -1;
    }
    Py_ssize_t n;
    const char *s = PyUnicode_AsUTF8AndSize(text, &n);
    int rc = s ? put_text(enc, s, n) : -1;
    Py_DECREF(text);
    return rc;
}

static int put_object(Encoder *enc, PyObject *v, int kind) {
    if (kind == KIND_JSON) return put_str_object(enc, PyObject_CallOneArg(enc->json_dumps, v));
    if (PyUnicode_CheckExact(v)) {
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(v, &n);
        return s ? put_text(enc, s, n) : -1;
    }
    if (PyBool_Check(v)) return buf_putc(&enc->scratch, v == Py_True ? 't' : 'f');
    if (PyLong_CheckExact(v) || PyFloat_CheckExact(v)) return put_str_object(enc, PyObject_Str(v));
    return put_str_object(enc, PyObject_CallOneArg(enc->to_text, v));
}

static PyObject *Encoder_add(Encoder *enc, PyObject *args) {
    PyObject *record, *version, *extracted;
    Py_ssize_t size;
    if (!PyArg_ParseTuple(args, "O!OOn", &PyDict_Type, &record, &version, &extracted, &size)) return NULL;
    if (!encoder_ready(enc)) return NULL;
    begin_row(enc);
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(record, &pos, &key, &value)) {
        if (!PyUnicode_Check(key)) continue;
        Py_ssize_t n;
        const char *s = PyUnicode_AsUTF8AndSize(key, &n);
        if (!s) return NULL;
        Field *f = lookup_field(enc, s, n);
        if (!f) continue;
        if (value == Py_None) { enc->len[f->column] = -1; continue; }
        Py_ssize_t start = enc->scratch.len;
        if (put_object(enc, value, f->kind) < 0) {
            if (PyErr_ExceptionMatches(PyExc_ValueError) || PyErr_ExceptionMatches(PyExc_TypeError)) {
                PyObject *type, *exc, *tb;
                PyErr_Fetch(&type, &exc, &tb);
                PyErr_NormalizeException(&type, &exc, &tb);
                PyErr_Format(PyExc_ValueError, "property %R: %S", key, exc);
                Py_XDECREF(type);
                Py_XDECREF(exc);
                Py_XDECREF(tb);
            }
            return NULL;
        }
        enc->off[f->column] = start;
        enc->len[f->column] = enc->scratch.len - start;
    }
    if (enc->extracted_at >= 0) {
        int c = enc->extracted_at;
        enc->len[c] = -1;
        if (extracted != Py_None) {
            Py_ssize_t start = enc->scratch.len;
            if (put_object(enc, extracted, KIND_TEXT) < 0) return NULL;
            enc->off[c] = start;
            enc->len[c] = enc->scratch.len - start;
        }
    }
    if (enc->version_at >= 0) {
        int c = enc->version_at;
        enc->len[c] = -1;
        if (version != Py_None) {
            Py_ssize_t start = enc->scratch.len;
            if (put_object(enc, version, KIND_INT) < 0) return NULL;
            enc->off[c] = start;
            enc->len[c] = enc->scratch.len - start;
        }
    }
    if (!keys_present(enc)) {
        PyErr_SetString(PyExc_ValueError, "record has no value for a key property");
        return NULL;
    }
    if (commit_row(enc) < 0) return NULL;
    enc->nbytes += size;
    return PyBool_FromLong(enc->rows >= enc->max_rows || enc->nbytes >= enc->max_bytes);
}

static PyObject *Encoder_take(Encoder *enc, PyObject *Py_UNUSED(ignored)) {
    PyObject *data = PyBytes_FromStringAndSize(enc->out.data ? enc->out.data : "", enc->out.len);
    if (!data) return NULL;
    enc->out.len = 0;
    enc->rows = enc->nbytes = 0;
    enc->duplicates = 0;
    if (enc->seen_keys && PySet_Clear(enc->seen_keys) < 0) { Py_DECREF(data); return NULL; }
    /* A huge batch should not pin its memory for the rest of the run. */
    if (enc->out.cap > (64 << 20)) buf_free(&enc->out);
    return data;
}

static PyObject *Encoder_full(Encoder *enc, PyObject *Py_UNUSED(ignored)) {
    return PyBool_FromLong(enc->rows >= enc->max_rows || enc->nbytes >= enc->max_bytes);
}

static PyObject *Encoder_age(Encoder *enc, PyObject *Py_UNUSED(ignored)) {
    return PyFloat_FromDouble(enc->rows ? monotonic_now() - enc->first_at : 0.0);
}

static PyMethodDef Encoder_methods[] = {
    {"add", (PyCFunction)Encoder_add, METH_VARARGS,
     "add(record, version, time_extracted, size) -> full: append a decoded record"},
    {"take", (PyCFunction)Encoder_take, METH_NOARGS, "take() -> bytes: the batch's COPY text; starts a new batch"},
    {"is_full", (PyCFunction)Encoder_full, METH_NOARGS, "True when the batch reached max_rows or max_bytes"},
    {"age", (PyCFunction)Encoder_age, METH_NOARGS, "seconds since the batch's first row (0 when empty)"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Encoder_members[] = {
    {"rows", T_PYSSIZET, offsetof(Encoder, rows), READONLY, "rows in the batch"},
    {"nbytes", T_PYSSIZET, offsetof(Encoder, nbytes), READONLY, "input bytes of the batch"},
    {"duplicates", T_INT, offsetof(Encoder, duplicates), READONLY, "1 when a key came twice in the batch"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "targets.postgres._copyrows.Encoder",
    .tp_basicsize = sizeof(Encoder),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "One stream's batch of COPY text rows.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Encoder_init,
    .tp_dealloc = (destructor)Encoder_dealloc,
    .tp_traverse = (traverseproc)Encoder_traverse,
    .tp_clear = (inquiry)Encoder_clear,
    .tp_free = PyObject_GC_Del,
    .tp_methods = Encoder_methods,
    .tp_members = Encoder_members,
};

/* -- Router: a line to the encoder of its stream ------------------------------------------------ */
typedef struct {
    char *name;
    Py_ssize_t len;
    Encoder *enc;
} Route;

typedef struct {
    PyObject_HEAD
    Route *routes;
    Py_ssize_t nroutes, cap;
    Py_ssize_t last; /* the route that matched last: lines of one stream come in runs */
    Buf key, stream, extracted;
} Router;

static int Router_traverse(Router *r, visitproc visit, void *arg) {
    for (Py_ssize_t i = 0; i < r->nroutes; i++) Py_VISIT(r->routes[i].enc);
    return 0;
}

static int Router_clear(Router *r) {
    /* Detached first: dropping an encoder may run Python code that uses this router. */
    Route *routes = r->routes;
    Py_ssize_t n = r->nroutes;
    r->routes = NULL;
    r->nroutes = r->cap = r->last = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyMem_Free(routes[i].name);
        Py_DECREF(routes[i].enc);
    }
    PyMem_Free(routes);
    return 0;
}

static void Router_dealloc(Router *r) {
    PyObject_GC_UnTrack(r);
    Router_clear(r);
    buf_free(&r->key);
    buf_free(&r->stream);
    buf_free(&r->extracted);
    Py_TYPE(r)->tp_free((PyObject *)r);
}

static Py_ssize_t find_route(Router *r, const char *s, Py_ssize_t n) {
    if (r->last < r->nroutes) {
        Route *x = &r->routes[r->last];
        if (x->len == n && memcmp(x->name, s, (size_t)n) == 0) return r->last;
    }
    for (Py_ssize_t i = 0; i < r->nroutes; i++)
        if (r->routes[i].len == n && memcmp(r->routes[i].name, s, (size_t)n) == 0) return r->last = i;
    return -1;
}

static PyObject *Router_register(Router *r, PyObject *args) {
    const char *s;
    Py_ssize_t n;
    Encoder *enc;
    if (!PyArg_ParseTuple(args, "s#O!", &s, &n, &EncoderType, &enc) || !encoder_ready(enc)) return NULL;
    Py_ssize_t i = find_route(r, s, n);
    Py_INCREF(enc);
    if (i >= 0) {
        Encoder *old = r->routes[i].enc; /* replaced before it goes: freeing it may run Python code */
        r->routes[i].enc = enc;
        Py_DECREF(old);
        Py_RETURN_NONE;
    }
    if (r->nroutes == r->cap) {
        Py_ssize_t cap = r->cap ? r->cap * 2 : 8;
        Route *routes = PyMem_Realloc(r->routes, (size_t)cap * sizeof(Route));
        if (!routes) { Py_DECREF(enc); return PyErr_NoMemory(); }
        r->routes = routes;
        r->cap = cap;
    }
    char *name = copy_name(s, n);
    if (!name) { Py_DECREF(enc); return NULL; }
    r->routes[r->nroutes++] = (Route){name, n, enc};
    Py_RETURN_NONE;
}

static PyObject *Router_unregister(Router *r, PyObject *args) {
    const char *s;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "s#", &s, &n)) return NULL;
    Py_ssize_t i = find_route(r, s, n);
    if (i >= 0) {
        Route gone = r->routes[i];
        r->routes[i] = r->routes[--r->nroutes];
        r->last = 0;
        PyMem_Free(gone.name);
        Py_DECREF(gone.enc);
    }
    Py_RETURN_NONE;
}

/* Parse a record object into `enc`'s scratch as a new row. */
static int parse_row(Encoder *enc, P *pp, P e) {
    begin_row(enc);
    return parse_record(enc, pp, e);
}

static inline int is_key(const Buf *key, const char *word, Py_ssize_t n) {
    return key->len == n && memcmp(key->data, word, (size_t)n) == 0;
}

/* feed(line) -> 0 not handled (take the decoded path), 1 added, 2 added and the batch is full. */
static PyObject *Router_feed(Router *r, PyObject *arg) {
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(arg, &data, &size) < 0) return NULL;
    P p = (P)data, e = p + size;
    P record_at = NULL, version_at = NULL, version_end = NULL;
    int type_ok = 0, has_extracted = 0, parsed = 0, seen_record = 0, rc, flags, nflags, nul;
    Encoder *enc = NULL;
    Buf *key = &r->key;
    p = skip_ws(p, e);
    if (p >= e || *p != '{') goto no;
    p = skip_ws(p + 1, e);
    for (;;) {
        flags = nflags = nul = 0;
        if (p >= e || *p != '"') goto no;
        key->len = 0;
        if (!(p = scan_string(p + 1, e, key, 0, &flags))) goto no;
        p = skip_ws(p, e);
        if (p >= e || *p != ':') goto no;
        p = skip_ws(p + 1, e);
        if (is_key(key, "type", 4)) {
            /* Only the plain spelling: anything else is for the decoded path to judge. */
            if (type_ok || !(p = scan_literal(p, e, "\"RECORD\"", 8))) goto no;
            type_ok = 1;
        } else if (is_key(key, "stream", 6)) {
            if (enc || p >= e || *p != '"') goto no;
            r->stream.len = 0;
            if (!(p = scan_string(p + 1, e, &r->stream, 0, &flags))) goto no;
            Py_ssize_t i = find_route(r, r->stream.data ? r->stream.data : "", r->stream.len);
            if (i < 0) goto no; /* an unknown stream, or one loaded the decoded way */
            enc = r->routes[i].enc;
            if (record_at) {
                P at = record_at; /* the record came before the stream */
                if ((rc = parse_row(enc, &at, e)) != PARSE_OK) goto failed;
                parsed = 1;
            }
        } else if (is_key(key, "record", 6)) {
            if (seen_record) goto no;
            seen_record = 1;
            if (enc) {
                if ((rc = parse_row(enc, &p, e)) != PARSE_OK) goto failed;
                parsed = 1;
            } else {
                record_at = p;
                if (!(p = skip_value(p, e, 0, &nul))) goto no;
            }
        } else if (is_key(key, "version", 7)) {
            /* Only an integer is a version; anything else counts as none, as when decoded. */
            version_at = NULL;
            if (p < e && (*p == '-' || (*p >= '0' && *p <= '9'))) {
                P start = p;
                if (!(p = scan_number(p, e, &nflags)) || (nflags & (NUM_NEG_ZERO | NUM_BIG))) goto no;
                if (!(nflags & NUM_FRACTION)) {
                    version_at = start;
                    version_end = p;
                }
            } else if (!(p = skip_value(p, e, 0, &nul))) goto no;
        } else if (is_key(key, "time_extracted", 14)) {
            has_extracted = p < e && *p == '"';
            if (has_extracted) {
                r->extracted.len = 0;
                if (!(p = scan_string(p + 1, e, &r->extracted, 1, &flags))) goto no;
            } else if (!(p = skip_value(p, e, 0, &nul))) goto no;
        } else if (!(p = skip_value(p, e, 0, &nul))) goto no;
        p = skip_ws(p, e);
        if (p < e && *p == ',') { p = skip_ws(p + 1, e); continue; }
        if (p < e && *p == '}') break;
        goto no;
    }
    p = skip_ws(p + 1, e);
    if (p != e || !type_ok || !parsed) goto no;
    /* The envelope's fields win over record properties of the same name, as when decoded. */
    if (enc->extracted_at >= 0) {
        int c = enc->extracted_at;
        enc->len[c] = -1;
        if (has_extracted) {
            enc->off[c] = enc->scratch.len;
            if (buf_put(&enc->scratch, r->extracted.data ? r->extracted.data : "", r->extracted.len) < 0) return NULL;
            enc->len[c] = r->extracted.len;
        }
    }
    if (enc->version_at >= 0) {
        int c = enc->version_at;
        enc->len[c] = -1;
        if (version_at) {
            enc->off[c] = enc->scratch.len;
            if (buf_put(&enc->scratch, (const char *)version_at, version_end - version_at) < 0) return NULL;
            enc->len[c] = version_end - version_at;
        }
    }
    if (!keys_present(enc)) goto no; /* the decoded path names the line */
    if (commit_row(enc) < 0) return NULL;
    enc->nbytes += size;
    return PyLong_FromLong(enc->rows >= enc->max_rows || enc->nbytes >= enc->max_bytes ? FEED_FULL : FEED_ADDED);
failed:
    if (rc == PARSE_ERR) return NULL;
no:
    if (PyErr_Occurred()) return NULL; /* out of memory while scanning */
    return PyLong_FromLong(FEED_NO);
}

static PyMethodDef Router_methods[] = {
    {"register", (PyCFunction)Router_register, METH_VARARGS, "register(stream, encoder): route the stream's RECORDs"},
    {"unregister", (PyCFunction)Router_unregister, METH_VARARGS, "unregister(stream)"},
    {"feed", (PyCFunction)Router_feed, METH_O, "feed(line) -> 0 not handled, 1 added, 2 added and full"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RouterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "targets.postgres._copyrows.Router",
    .tp_basicsize = sizeof(Router),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "Routes RECORD lines to their stream's Encoder.",
    .tp_new = PyType_GenericNew,
    .tp_dealloc = (destructor)Router_dealloc,
    .tp_traverse = (traverseproc)Router_traverse,
    .tp_clear = (inquiry)Router_clear,
    .tp_free = PyObject_GC_Del,
    .tp_methods = Router_methods,
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "targets.postgres._copyrows",
    "Singer RECORD lines to PostgreSQL COPY text rows.", -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__copyrows(void) {
    init_tables();
    if (PyType_Ready(&EncoderType) < 0 || PyType_Ready(&RouterType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    if (PyModule_AddObjectRef(m, "Encoder", (PyObject *)&EncoderType) < 0 ||
        PyModule_AddObjectRef(m, "Router", (PyObject *)&RouterType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    static const struct { const char *name; int value; } constants[] = {
        {"KIND_TEXT", KIND_TEXT}, {"KIND_INT", KIND_INT}, {"KIND_FLOAT", KIND_FLOAT},
        {"KIND_DECIMAL", KIND_DECIMAL}, {"KIND_BOOL", KIND_BOOL}, {"KIND_JSON", KIND_JSON},
        {"NUL_STRIP", NUL_STRIP}, {"NUL_REPLACE", NUL_REPLACE}, {"NUL_FAIL", NUL_FAIL},
    };
    for (size_t i = 0; i < sizeof(constants) / sizeof(constants[0]); i++)
        if (PyModule_AddIntConstant(m, constants[i].name, constants[i].value) < 0) { Py_DECREF(m); return NULL; }
    return m;
}
