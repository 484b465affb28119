/*
 * dpone.targets.postgres._copyrows: Singer RECORD lines -> PostgreSQL COPY text rows, without Python
 * objects per row. What each file does:
 *
 *   json_scan.c  validating JSON scanner: strings (decoded, COPY-escaped), numbers, any value
 *   encoder.c    Encoder: one stream's batch of rows; a record object into a row, or a decoded dict (add)
 *   router.c     Router: a RECORD line's envelope, routed to its stream's Encoder (feed)
 *   module.c     the module and its constants
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
#ifndef DPONE_COPYROWS_H
#define DPONE_COPYROWS_H

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

static inline int buf_grow(Buf *b, Py_ssize_t extra) {
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

static inline void buf_free(Buf *b) { PyMem_Free(b->data); b->data = NULL; b->len = b->cap = 0; }

/* Bytes COPY text needs escaped: backslash, newline, carriage return, tab (the delimiter). */
static inline int put_copy_escaped(Buf *b, const char *s, Py_ssize_t n) {
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

/* A NUL-terminated copy of a name (a property, a stream). */
static inline char *copy_name(const char *s, Py_ssize_t n) {
    char *name = PyMem_Malloc((size_t)n + 1);
    if (!name) { PyErr_NoMemory(); return NULL; }
    memcpy(name, s, (size_t)n);
    name[n] = 0;
    return name;
}

/* -- JSON scanning (json_scan.c) -------------------------------------------------------------- */
typedef const unsigned char *P;

static inline P skip_ws(P p, P e) {
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')) p++;
    return p;
}

/* Bytes that end a plain run inside a string: quote, backslash, control characters, non-ASCII. */
extern unsigned char STRING_STOP[256];
void init_tables(void);

#define STR_HAS_NUL 1
#define STR_INVALID 2
#define NUM_FRACTION 1 /* has a fraction or an exponent: Python would have made it a float */
#define NUM_NEG_ZERO 2 /* "-0": Python prints it as 0 */
#define NUM_BIG 4      /* more digits than 64 bits hold: orjson makes it a float */
#define NUM_TINY 8     /* not zero, but below 1e-306: a double may round it to 0 */

P scan_string(P p, P e, Buf *out, int copy, int *flags);
P scan_number(P p, P e, int *nflags);
P scan_literal(P p, P e, const char *word, Py_ssize_t n);
P skip_value(P p, P e, int depth, int *nul);

/* -- Encoder (encoder.c) ----------------------------------------------------------------------- */
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
    long long min_version; /* the lowest table version of the batch's rows (LLONG_MAX: none yet) */
    int unversioned;       /* 1 when a row of the batch has no version (or one past 64 bits) */
} Encoder;

extern PyTypeObject EncoderType;

#define PARSE_NO 0   /* not handled here: the decoded path takes the line */
#define PARSE_OK 1
#define PARSE_ERR -1 /* a Python error is set */

void begin_row(Encoder *enc);
int parse_record(Encoder *enc, P *pp, P e);
int keys_present(Encoder *enc);
int commit_row(Encoder *enc);
int encoder_ready(Encoder *enc);

/* -- Router (router.c) ------------------------------------------------------------------------- */
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

extern PyTypeObject RouterType;

#endif
