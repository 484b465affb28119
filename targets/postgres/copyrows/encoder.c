/* Encoder: one stream's batch of COPY rows. See copyrows.h. */
#include "copyrows.h"

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

void begin_row(Encoder *enc) {
    enc->scratch.len = 0;
    for (int i = 0; i < enc->ncolumns; i++) enc->len[i] = -1;
}

/* The batch's lowest version, from the row's version column (integer text, as written, or NULL). */
static void note_version(Encoder *enc, int c) {
    Py_ssize_t n = enc->len[c];
    const char *s = enc->scratch.data + enc->off[c];
    int negative = n > 0 && *s == '-';
    Py_ssize_t digits = n - negative;
    if (n < 0 || digits < 1 || digits > 18) { /* none, or too long to be sure of in 64 bits */
        enc->unversioned = 1;
        return;
    }
    long long v = 0;
    for (Py_ssize_t i = negative; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') {
            enc->unversioned = 1;
            return;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (negative) v = -v;
    if (v < enc->min_version) enc->min_version = v;
}

/* Append the row held in scratch to the batch. -1 on a Python error. */
int commit_row(Encoder *enc) {
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
    if (enc->version_at >= 0) note_version(enc, enc->version_at);
    if (enc->rows++ == 0) enc->first_at = monotonic_now();
    return 0;
}

int keys_present(Encoder *enc) {
    for (int k = 0; k < enc->nkeys; k++)
        if (enc->len[enc->keys[k]] < 0) return 0;
    return 1;
}

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
int parse_record(Encoder *enc, P *pp, P e) {
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
    enc->min_version = LLONG_MAX;
    /* Set last: an Encoder with to_text is one whose __init__ finished (see encoder_ready). */
    Py_INCREF(json_dumps);
    enc->json_dumps = json_dumps;
    Py_INCREF(to_text);
    enc->to_text = to_text;
    return 0;
}

/* False, with ValueError, for an Encoder made without __init__, whose __init__ failed, or cleared
   by the garbage collector: it has no field table or callables to use. */
int encoder_ready(Encoder *enc) {
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

/* feed_record(line) -> bool: a bare record object (a line of a JSONL BATCH file) into a row, as
   feed() takes a RECORD line; False leaves the batch untouched for the decoded path. */
static PyObject *Encoder_feed_record(Encoder *enc, PyObject *arg) {
    char *data;
    Py_ssize_t size;
    if (PyBytes_AsStringAndSize(arg, &data, &size) < 0 || !encoder_ready(enc)) return NULL;
    P p = skip_ws((P)data, (P)data + size), e = (P)data + size;
    begin_row(enc);
    int rc = parse_record(enc, &p, e);
    if (rc == PARSE_ERR) return NULL;
    if (rc == PARSE_NO || skip_ws(p, e) != e) Py_RETURN_FALSE;
    /* No envelope: no extraction time, no version (as a decoded BATCH record gets). */
    if (enc->extracted_at >= 0) enc->len[enc->extracted_at] = -1;
    if (enc->version_at >= 0) enc->len[enc->version_at] = -1;
    if (!keys_present(enc)) Py_RETURN_FALSE;
    if (commit_row(enc) < 0) return NULL;
    enc->nbytes += size;
    Py_RETURN_TRUE;
}

static PyObject *Encoder_take(Encoder *enc, PyObject *Py_UNUSED(ignored)) {
    PyObject *data = PyBytes_FromStringAndSize(enc->out.data ? enc->out.data : "", enc->out.len);
    if (!data) return NULL;
    enc->out.len = 0;
    enc->rows = enc->nbytes = 0;
    enc->duplicates = 0;
    enc->min_version = LLONG_MAX;
    enc->unversioned = 0;
    if (enc->seen_keys && PySet_Clear(enc->seen_keys) < 0) { Py_DECREF(data); return NULL; }
    /* A huge batch should not pin its memory for the rest of the run. */
    if (enc->out.cap > (64 << 20)) buf_free(&enc->out);
    return data;
}

/* Before take(): the lowest table version among the batch's rows, or None when one has none. */
static PyObject *Encoder_version_floor(Encoder *enc, PyObject *Py_UNUSED(ignored)) {
    if (enc->version_at < 0 || enc->unversioned || !enc->rows) Py_RETURN_NONE;
    return PyLong_FromLongLong(enc->min_version);
}

/* The batch's key texts, taken before take(): complete only while no key came twice (else None).
 * The set is handed over, not copied; the encoder tracks the next batch in a new one. */
static PyObject *Encoder_take_keys(Encoder *enc, PyObject *Py_UNUSED(ignored)) {
    if (!enc->seen_keys || enc->duplicates) Py_RETURN_NONE;
    PyObject *fresh = PySet_New(NULL);
    if (!fresh) return NULL;
    PyObject *taken = enc->seen_keys;
    enc->seen_keys = fresh;
    return taken;
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
    {"feed_record", (PyCFunction)Encoder_feed_record, METH_O,
     "feed_record(line) -> taken: a bare record object's JSON into a row, or False for the decoded path"},
    {"take", (PyCFunction)Encoder_take, METH_NOARGS, "take() -> bytes: the batch's COPY text; starts a new batch"},
    {"version_floor", (PyCFunction)Encoder_version_floor, METH_NOARGS,
     "version_floor() -> the lowest table version of the batch's rows, or None when a row has none"},
    {"take_keys", (PyCFunction)Encoder_take_keys, METH_NOARGS,
     "take_keys() -> set of the batch's key texts, or None when untracked or a key came twice; call before take()"},
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

PyTypeObject EncoderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dpone.targets.postgres._copyrows.Encoder",
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
