/* Router: RECORD lines to their stream's Encoder. See copyrows.h. */
#include "copyrows.h"

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

/* One line (its newline included): FEED_NO (take the decoded path), FEED_ADDED, FEED_FULL (added and
 * the batch is full), or -1 with a Python error set. */
static int feed_line(Router *r, P p, Py_ssize_t size) {
    P e = p + size;
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
            if (buf_put(&enc->scratch, r->extracted.data ? r->extracted.data : "", r->extracted.len) < 0) return -1;
            enc->len[c] = r->extracted.len;
        }
    }
    if (enc->version_at >= 0) {
        int c = enc->version_at;
        enc->len[c] = -1;
        if (version_at) {
            enc->off[c] = enc->scratch.len;
            if (buf_put(&enc->scratch, (const char *)version_at, version_end - version_at) < 0) return -1;
            enc->len[c] = version_end - version_at;
        }
    }
    if (!keys_present(enc)) goto no; /* the decoded path names the line */
    if (commit_row(enc) < 0) return -1;
    enc->nbytes += size;
    return enc->rows >= enc->max_rows || enc->nbytes >= enc->max_bytes ? FEED_FULL : FEED_ADDED;
failed:
    if (rc == PARSE_ERR) return -1;
no:
    if (PyErr_Occurred()) return -1; /* out of memory while scanning */
    return FEED_NO;
}

/* feed(line) -> 0 not handled (take the decoded path), 1 added, 2 added and the batch is full. */
static PyObject *Router_feed(Router *r, PyObject *arg) {
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(arg, &data, &size) < 0) return NULL;
    int rc = feed_line(r, (P)data, size);
    return rc < 0 ? NULL : PyLong_FromLong(rc);
}

/* feed_run(block, at, line) -> (end, lines taken, batch full): the whole lines from `at` on, fed one
 * after the other until one is not handled (or fails: the line loop feeds it again and reports it
 * with its line number) or a batch is full. No Python work per line. */
static PyObject *Router_feed_run(Router *r, PyObject *args) {
    Py_buffer view;
    Py_ssize_t at, line;
    if (!PyArg_ParseTuple(args, "y*nn", &view, &at, &line)) return NULL;
    if (at < 0 || at > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "at is outside the block");
        return NULL;
    }
    P base = view.buf, end = base + view.len, pos = base + at;
    Py_ssize_t taken = 0;
    int full = 0;
    while (pos < end) {
        P nl = memchr(pos, '\n', (size_t)(end - pos));
        if (!nl) break; /* only whole lines */
        int rc = feed_line(r, pos, nl + 1 - pos);
        if (rc <= 0) {
            PyErr_Clear();
            break;
        }
        taken++;
        pos = nl + 1;
        if (rc == FEED_FULL) {
            full = 1;
            break;
        }
    }
    PyBuffer_Release(&view);
    return Py_BuildValue("(nnO)", (Py_ssize_t)(pos - base), taken, full ? Py_True : Py_False);
}

static PyMethodDef Router_methods[] = {
    {"register", (PyCFunction)Router_register, METH_VARARGS, "register(stream, encoder): route the stream's RECORDs"},
    {"unregister", (PyCFunction)Router_unregister, METH_VARARGS, "unregister(stream)"},
    {"feed", (PyCFunction)Router_feed, METH_O, "feed(line) -> 0 not handled, 1 added, 2 added and full"},
    {"feed_run", (PyCFunction)Router_feed_run, METH_VARARGS,
     "feed_run(block, at, line) -> (end, lines taken, batch full): the run of lines it handles from `at` on"},
    {NULL, NULL, 0, NULL},
};

PyTypeObject RouterType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dpone.targets.postgres._copyrows.Router",
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
