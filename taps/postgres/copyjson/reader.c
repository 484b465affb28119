/* Reader: COPY text rows off a libpq connection, each written as one JSON object. See copyjson.h. */
#include <poll.h>

#include "copyjson.h"

typedef struct {
    PyObject_HEAD
    void *conn;          /* the PGconn, owned by psycopg */
    int ncolumns, nfields;
    int *kinds;          /* per column */
    char **prefix;       /* per column: `{"name":` for the first, `,"name":` after */
    Py_ssize_t *prefix_len;
    int key_mode;        /* KEY_*: what follows the columns */
    Buf out, key, last;  /* key: this row's key array; last: the last row's that was not [null] */
    int done;
} Reader;

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char HEXVAL[256] = {
    ['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5, ['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9,
    ['9'] = 10, ['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    ['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
};

static inline int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The byte a COPY text escape stands for: \b \f \n \r \t \v are control characters; any other
 * escaped byte (the backslash itself) stands for itself. COPY TO writes no other escapes. */
static inline char unescaped(char c) {
    switch (c) {
        case 'b': return '\b';
        case 'f': return '\f';
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'v': return '\v';
        default: return c;
    }
}

/* A COPY text value as a JSON string. */
static int put_text(Buf *b, const char *p, const char *e) {
    /* Worst case: every byte a \u00XX escape. */
    if (b->len + 6 * (e - p) + 2 > b->cap && buf_grow(b, 6 * (e - p) + 2) < 0) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    while (p < e) {
        unsigned char c = (unsigned char)*p++;
        if (c == '\\' && p < e) c = (unsigned char)unescaped(*p++);
        if (c >= 0x20 && c != '"' && c != '\\') { *o++ = (char)c; continue; }
        *o++ = '\\';
        switch (c) {
            case '"': *o++ = '"'; break;
            case '\\': *o++ = '\\'; break;
            case '\b': *o++ = 'b'; break;
            case '\f': *o++ = 'f'; break;
            case '\n': *o++ = 'n'; break;
            case '\r': *o++ = 'r'; break;
            case '\t': *o++ = 't'; break;
            default:
                *o++ = 'u'; *o++ = '0'; *o++ = '0';
                *o++ = "0123456789abcdef"[c >> 4]; *o++ = "0123456789abcdef"[c & 15];
        }
    }
    *o++ = '"';
    b->len = o - b->data;
    return 0;
}

/* JSON text (escaped for COPY) as it is, its line breaks (whitespace between tokens: a JSON string
 * holds none raw) made spaces so the line stays one line. */
static int put_json(Buf *b, const char *p, const char *e) {
    if (b->len + (e - p) > b->cap && buf_grow(b, e - p) < 0) return -1;
    char *o = b->data + b->len;
    while (p < e) {
        char c = *p++;
        if (c == '\\' && p < e) c = unescaped(*p++);
        *o++ = (c == '\n' || c == '\r') ? ' ' : c;
    }
    b->len = o - b->data;
    return 0;
}

/* Whether JSON text (escaped for COPY) is the document `null`, whitespace around it allowed. */
static int is_json_null(const char *p, const char *e) {
    for (;;) {
        if (p < e && *p == ' ') p++;
        else if (e - p >= 2 && *p == '\\' && (p[1] == 't' || p[1] == 'n' || p[1] == 'r')) p += 2;
        else break;
    }
    for (;;) {
        if (e > p && e[-1] == ' ') e--;
        else if (e - p >= 2 && e[-2] == '\\' && (e[-1] == 't' || e[-1] == 'n' || e[-1] == 'r')) e -= 2;
        else break;
    }
    return e - p == 4 && memcmp(p, "null", 4) == 0;
}

static int put_float(Buf *b, const char *p, const char *e) {
    Py_ssize_t n = e - p;
    if ((n == 3 && memcmp(p, "NaN", 3) == 0) || (n == 8 && memcmp(p, "Infinity", 8) == 0) ||
        (n == 9 && memcmp(p, "-Infinity", 9) == 0)) {
        /* Not JSON numbers: row_to_json writes them as strings. */
        if (buf_putc(b, '"') < 0 || buf_put(b, p, n) < 0) return -1;
        return buf_putc(b, '"');
    }
    if (n == 2 && p[0] == '-' && p[1] == '0') return buf_put(b, "-0.0", 4); /* `-0` would read as the integer 0 */
    return buf_put(b, p, n);
}

/* `2024-01-02 03:04:05.6+05:30` (ISO DateStyle) as `2024-01-02T03:04:05.6+05:30` (what row_to_json
 * writes): T between date and time, and an offset of whole hours gets its minutes (`+00` -> `+00:00`).
 * A year past 9999, ` BC` and `infinity` come through unchanged in both forms. */
static int put_timestamp(Buf *b, const char *p, const char *e) {
    Py_ssize_t n = e - p, s = 0;
    if (b->len + n + 5 > b->cap && buf_grow(b, n + 5) < 0) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    while (s < n && !(p[s] == ' ' && s + 1 < n && is_digit(p[s + 1]))) s++;
    if (s == n) { /* no time part: infinity */
        memcpy(o, p, (size_t)n);
        o += n;
    } else {
        memcpy(o, p, (size_t)s);
        o += s;
        *o++ = 'T';
        Py_ssize_t t = s + 1;
        while (t < n && p[t] != '+' && p[t] != '-' && p[t] != ' ') t++;
        memcpy(o, p + s + 1, (size_t)(t - s - 1));
        o += t - s - 1;
        if (t < n && (p[t] == '+' || p[t] == '-')) {
            Py_ssize_t j = t + 1;
            while (j < n && is_digit(p[j])) j++;
            memcpy(o, p + t, (size_t)(j - t));
            o += j - t;
            if (j - t - 1 == 2 && (j == n || p[j] == ' ')) { *o++ = ':'; *o++ = '0'; *o++ = '0'; }
            t = j;
        }
        memcpy(o, p + t, (size_t)(n - t));
        o += n - t;
    }
    *o++ = '"';
    b->len = o - b->data;
    return 0;
}

/* `\\x0a0b...` (hex bytea_output, its backslash escaped by COPY) as a base64 string. */
static int put_bytea(Buf *b, const char *p, const char *e) {
    if (e - p < 3 || p[0] != '\\' || p[1] != '\\' || p[2] != 'x' || (e - p - 3) % 2) {
        PyErr_SetString(PyExc_ValueError, "a bytea value is not in hex form (bytea_output must be hex)");
        return -1;
    }
    p += 3;
    Py_ssize_t bytes = (e - p) / 2, need = (bytes + 2) / 3 * 4 + 2;
    if (b->len + need > b->cap && buf_grow(b, need) < 0) return -1;
    char *o = b->data + b->len;
    *o++ = '"';
    unsigned int acc = 0;
    int have = 0;
    for (Py_ssize_t i = 0; i < bytes; i++, p += 2) {
        int hi = HEXVAL[(unsigned char)p[0]], lo = HEXVAL[(unsigned char)p[1]];
        if (!hi || !lo) {
            PyErr_SetString(PyExc_ValueError, "a bytea value holds a byte that is not hex");
            return -1;
        }
        acc = (acc << 8) | (unsigned int)(((hi - 1) << 4) | (lo - 1));
        if (++have == 3) {
            *o++ = B64[(acc >> 18) & 63]; *o++ = B64[(acc >> 12) & 63];
            *o++ = B64[(acc >> 6) & 63]; *o++ = B64[acc & 63];
            acc = 0;
            have = 0;
        }
    }
    if (have == 1) {
        *o++ = B64[(acc >> 2) & 63]; *o++ = B64[(acc << 4) & 63]; *o++ = '='; *o++ = '=';
    } else if (have == 2) {
        *o++ = B64[(acc >> 10) & 63]; *o++ = B64[(acc >> 4) & 63]; *o++ = B64[(acc << 2) & 63]; *o++ = '=';
    }
    *o++ = '"';
    b->len = o - b->data;
    return 0;
}

static int put_value(Buf *b, int kind, const char *p, const char *e) {
    switch (kind) {
        case K_INT: return buf_put(b, p, e - p);
        case K_FLOAT: return put_float(b, p, e);
        case K_BOOL: return *p == 't' ? buf_put(b, "true", 4) : buf_put(b, "false", 5);
        case K_TEXT: return put_text(b, p, e);
        case K_TIMESTAMP: return put_timestamp(b, p, e);
        case K_BYTEA: return put_bytea(b, p, e);
        default: return put_json(b, p, e);
    }
}

static inline int is_null(const char *p, const char *e) { return e - p == 2 && p[0] == '\\' && p[1] == 'N'; }

/* One COPY row (its fields, the key's after the columns) as head + {...} + tail. */
static int encode_row(Reader *self, const char *p, Py_ssize_t n, Py_buffer *head, Py_buffer *tail,
                      Py_ssize_t *nulls, int *keyed) {
    const char *e = p + n;
    if (e > p && e[-1] == '\n') e--;
    Buf *o = &self->out, *k = &self->key;
    if (buf_put(o, head->buf, head->len) < 0) return -1;
    if (self->ncolumns == 0 && buf_putc(o, '{') < 0) return -1;
    k->len = 0;
    int doc_null = 0; /* rows, not values, are counted */
    for (int i = 0; i < self->nfields; i++) {
        if (p > e) goto short_row;
        const char *f = memchr(p, '\t', (size_t)(e - p));
        if (!f) f = e;
        int null = is_null(p, f);
        if (i < self->ncolumns) {
            int kind = self->kinds[i];
            if (buf_put(o, self->prefix[i], self->prefix_len[i]) < 0) return -1;
            if (null) { if (buf_put(o, "null", 4) < 0) return -1; }
            else {
                if (put_value(o, kind, p, f) < 0) return -1;
                if (kind == K_JSON_DOC && !doc_null) doc_null = is_json_null(p, f);
            }
        } else if (self->key_mode == KEY_JSON) {
            if (!null && put_json(k, p, f) < 0) return -1;
        } else {
            int first = i == self->ncolumns;
            if (buf_putc(k, first ? '[' : ',') < 0) return -1;
            if (null ? buf_put(k, "null", 4) < 0 : buf_put(k, p, f - p) < 0) return -1;
            if (i == self->nfields - 1 && buf_putc(k, ']') < 0) return -1;
        }
        p = f + 1;
    }
    if (p <= e) {
        PyErr_Format(PyExc_ValueError, "a COPY row has more fields than the %d selected", self->nfields);
        return -1;
    }
    if (buf_putc(o, '}') < 0 || buf_put(o, tail->buf, tail->len) < 0) return -1;
    *nulls += doc_null;
    /* A NULL key bookmarks nothing (as the JSON path's [null]). */
    if (k->len && !(k->len == 6 && memcmp(k->data, "[null]", 6) == 0)) {
        Buf swap = self->last;
        self->last = *k;
        *k = swap;
        *keyed = 1;
    }
    return 0;
short_row:
    PyErr_Format(PyExc_ValueError, "a COPY row has fewer fields than the %d selected", self->nfields);
    return -1;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* read(head, tail, max_rows, max_bytes) -> (lines, rows, last_key | None, json_nulls, status) */
static PyObject *Reader_read(Reader *self, PyObject *args) {
    Py_buffer head, tail;
    Py_ssize_t max_rows, max_bytes, rows = 0, nulls = 0;
    if (!PyArg_ParseTuple(args, "y*y*nn", &head, &tail, &max_rows, &max_bytes)) return NULL;
    PyObject *result = NULL;
    int status = 0, keyed = 0;
    double started = now_s();
    self->out.len = 0;
    if (self->done) {
        PyErr_SetString(PyExc_RuntimeError, "the COPY has ended");
        goto out;
    }
    while (rows < max_rows && self->out.len < max_bytes) {
        char *row = NULL;
        int n = PQ.get_copy_data(self->conn, &row, 1);
        if (n == 0) {
            /* Nothing buffered: read what the socket holds, then wait for more. */
            if (!PQ.consume_input(self->conn)) { status = 2; break; }
            n = PQ.get_copy_data(self->conn, &row, 1);
            if (n == 0) {
                /* Rows held back while the server is slow would hold back the target too. */
                if (rows && now_s() - started > 1.0) break;
                struct pollfd fd = {PQ.socket(self->conn), POLLIN, 0};
                Py_BEGIN_ALLOW_THREADS
                poll(&fd, 1, 100);
                Py_END_ALLOW_THREADS
                if (PyErr_CheckSignals() < 0) goto out;
                continue;
            }
        }
        if (n > 0) {
            int rc = encode_row(self, row, n, &head, &tail, &nulls, &keyed);
            PQ.freemem(row);
            if (rc < 0) goto out;
            rows++;
            continue;
        }
        status = n == -1 ? 1 : 2;  /* -1: the COPY ended; -2: the connection failed */
        break;
    }
    if (status) self->done = 1;
    PyObject *lines = PyBytes_FromStringAndSize(self->out.data ? self->out.data : "", self->out.len);
    if (!lines) goto out;
    PyObject *key = keyed ? PyBytes_FromStringAndSize(self->last.data, self->last.len) : Py_NewRef(Py_None);
    if (!key) { Py_DECREF(lines); goto out; }
    result = Py_BuildValue("(NnNni)", lines, rows, key, nulls, status);
out:
    PyBuffer_Release(&head);
    PyBuffer_Release(&tail);
    return result;
}

static PyObject *Reader_error(Reader *self, PyObject *unused) {
    const char *text = PQ.error_message(self->conn);
    return PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace");
}

static void Reader_dealloc(Reader *self) {
    for (int i = 0; i < self->ncolumns && self->prefix; i++) PyMem_Free(self->prefix[i]);
    PyMem_Free(self->prefix);
    PyMem_Free(self->prefix_len);
    PyMem_Free(self->kinds);
    buf_free(&self->out);
    buf_free(&self->key);
    buf_free(&self->last);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reader(conn, prefixes, kinds, key_mode, key_fields): `conn` is the PGconn's address (psycopg's
 * pgconn.pgconn_ptr) in COPY OUT state; `prefixes` the bytes before each column's value; `kinds` one
 * K_* byte per column; `key_fields` the fields after the columns that make the row's key. */
static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    unsigned long long conn;
    PyObject *prefixes;
    Py_buffer kinds;
    int key_mode, key_fields;
    if (!PQ.get_copy_data) {
        PyErr_SetString(PyExc_RuntimeError, "libpq is not bound: call load() first");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "KO!y*ii", &conn, &PyTuple_Type, &prefixes, &kinds, &key_mode, &key_fields))
        return -1;
    int rc = -1;
    Py_ssize_t n = PyTuple_GET_SIZE(prefixes);
    if (kinds.len != n || key_mode < KEY_NONE || key_mode > KEY_INTS || key_fields < 0 ||
        (key_mode == KEY_NONE) != (key_fields == 0) || (key_mode == KEY_JSON && key_fields != 1) || !conn) {
        PyErr_SetString(PyExc_ValueError, "Reader: inconsistent columns, kinds or key");
        goto done;
    }
    self->conn = (void *)(uintptr_t)conn;
    self->ncolumns = (int)n;
    self->nfields = (int)n + key_fields;
    self->key_mode = key_mode;
    self->kinds = PyMem_Calloc((size_t)n + 1, sizeof(int));
    self->prefix = PyMem_Calloc((size_t)n + 1, sizeof(char *));
    self->prefix_len = PyMem_Calloc((size_t)n + 1, sizeof(Py_ssize_t));
    if (!self->kinds || !self->prefix || !self->prefix_len) { PyErr_NoMemory(); goto done; }
    for (Py_ssize_t i = 0; i < n; i++) {
        int kind = ((unsigned char *)kinds.buf)[i];
        PyObject *item = PyTuple_GET_ITEM(prefixes, i);
        if (kind >= K_COUNT || !PyBytes_Check(item)) {
            PyErr_SetString(PyExc_ValueError, "Reader: a column's kind or prefix is invalid");
            goto done;
        }
        self->kinds[i] = kind;
        if (!(self->prefix[i] = copy_name(PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item)))) goto done;
        self->prefix_len[i] = PyBytes_GET_SIZE(item);
    }
    rc = 0;
done:
    PyBuffer_Release(&kinds);
    return rc;
}

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)Reader_read, METH_VARARGS,
     "read(head, tail, max_rows, max_bytes) -> (lines, rows, last_key, json_nulls, status): up to max_rows "
     "rows as lines `head + {...} + tail`; status 0 more to come, 1 the COPY ended, 2 the connection failed."},
    {"error", (PyCFunction)Reader_error, METH_NOARGS, "libpq's error message for the connection."},
    {NULL, NULL, 0, NULL},
};

PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dpone.taps.postgres._copyjson.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "COPY text rows off a libpq connection as JSON lines.",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Reader_init,
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_methods = Reader_methods,
};
