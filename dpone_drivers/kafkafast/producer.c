/*
 * Producer: target-kafka's producer on librdkafka's own API (see kafkafast.h).
 *
 * One librdkafka producer serves two paths, so the messages of a key keep their input order
 * whichever path a line took:
 *
 *   feed_run()  whole compact RECORD lines of registered streams, straight from the input block:
 *               the record object's bytes are the value, the key is cut from them, the stream's
 *               insert headers go along. No Python object per line.
 *   produce()   a message the decoded path built (deletes, other layouts, Avro), with the names and
 *               errors of confluent-kafka's Producer.produce(), which Delivery was written against.
 *
 * feed_run() takes a line only when it is sure the decoded path would send the very same message:
 * the envelope exactly as dpone_protocol.wire.split_compact_record accepts it, a record object the
 * JSON scanner validates whole, every key field present once with a plain value (an integer of at
 * most 18 digits, not -0, or a string without escapes: their JSON text is what orjson writes
 * again), no _sdc_deleted_at other than null, and a top-level property name without escapes (it
 * could decode to a key field's name). Anything else ends the run; Python takes that line through
 * its own path, which produces it or names the problem with the line number.
 *
 * Delivery reports, client errors and log lines come through librdkafka callbacks. Those run inside
 * poll()/flush() with the GIL released, or on librdkafka's own threads (logs), so they only write
 * C state under `lock`; Python reads it with failure(), errors() and logs(), and logs the lines
 * itself (so its redaction applies).
 */
#include <limits.h>
#include <pthread.h>

#include "kafkafast.h"

#define LINES_KEPT 1000  /* log lines (errors) kept between two logs() (errors()) calls; past that counted */
#define POLL_EVERY 64  /* messages between two poll(0)s in feed_run: failure reports come in */
#define ROOM_WAIT_MS 1   /* a full queue is polled this often: room comes when a batch is acknowledged */
#define KEY_DIGITS_MAX 18 /* longer integers may not be a 64-bit int: orjson reads them as float */

typedef struct {
    char *data; /* NUL-terminated */
    Py_ssize_t len;
} Bytes;

typedef struct {
    Bytes name;         /* the stream name's UTF-8 bytes, as a compact line carries it (no quote, no backslash) */
    PyObject *stream;   /* the name as register() got it: feed_run() hands it back */
    Bytes topic;
    rd_kafka_topic_t *rkt; /* made at the stream's first message: a topic handle asks the brokers about it */
    Bytes *keys;        /* key fields, in key_properties order */
    Py_ssize_t nkeys;
    int key_string;     /* key_format "string": the one key's text, else a JSON object of the keys */
    Bytes *header_names, *header_values;
    Py_ssize_t nheaders;
} StreamRoute;

typedef struct {
    int level;      /* a log line's syslog level, or an error's code */
    char *facility; /* a log line's; NULL for an error */
    char *text;
} Line;

/* Lines the callbacks keep for Python: malloc'd (no GIL there), bounded. */
typedef struct {
    Line *items;
    Py_ssize_t n;
    unsigned long dropped;
} Kept;

typedef struct {
    PyObject_HEAD
    rd_kafka_t *rk;
    StreamRoute *routes;
    Py_ssize_t nroutes, cap;
    Py_ssize_t last; /* the route the last line took: lines of a stream come in runs */
    Buf key;
    int busy;        /* in feed_run(), which releases the GIL while it waits: routes must stay put */
    unsigned since_poll;
    Py_ssize_t room_waits;
    /* Written by the callbacks, read by Python: under `lock`. */
    pthread_mutex_t lock;
    int failed, fatal, has_topic;
    long long delivered; /* acknowledged messages: all produced are, when it equals their count */
    rd_kafka_resp_err_t code;
    int32_t partition;
    char text[512], topic[256];
    Kept logs, errors;
} Producer;

static PyObject *ProducerError;

/* -- small helpers ------------------------------------------------------------------------------ */

static int bytes_set(Bytes *b, const char *s, Py_ssize_t n) {
    b->data = PyMem_Malloc((size_t)n + 1);
    if (!b->data) { PyErr_NoMemory(); return -1; }
    if (n) memcpy(b->data, s, (size_t)n);
    b->data[n] = 0;
    b->len = n;
    return 0;
}

/* A str as UTF-8, or a bytes object as is. */
static int bytes_from(Bytes *b, PyObject *obj, const char *what) {
    const char *s;
    Py_ssize_t n;
    if (PyUnicode_Check(obj)) {
        s = PyUnicode_AsUTF8AndSize(obj, &n);
        if (!s) return -1;
    } else if (PyBytes_Check(obj)) {
        s = PyBytes_AS_STRING(obj);
        n = PyBytes_GET_SIZE(obj);
    } else {
        PyErr_Format(PyExc_TypeError, "%s must be str or bytes, not %.100s", what, Py_TYPE(obj)->tp_name);
        return -1;
    }
    return bytes_set(b, s, n);
}

static void bytes_free(Bytes *b) {
    PyMem_Free(b->data);
    b->data = NULL;
    b->len = 0;
}

static int timeout_ms(double seconds) {
    if (seconds < 0) return -1; /* librdkafka: wait as long as it takes */
    double ms = seconds * 1000.0;
    return ms >= (double)INT_MAX ? INT_MAX : (int)ms;
}

/* ProducerError((code, name, text)), the text worded as confluent-kafka words the same failure. */
static PyObject *client_error(rd_kafka_resp_err_t err, const char *doing) {
    PyObject *args = Py_BuildValue("(isN)", err, RDK.err2name(err), PyUnicode_FromFormat("%s: %s", doing, RDK.err2str(err)));
    if (args) {
        PyErr_SetObject(ProducerError, args);
        Py_DECREF(args);
    }
    return NULL;
}

static int check_ready(Producer *self) {
    if (!self->rk) {
        PyErr_SetString(PyExc_RuntimeError, "the Producer was not initialised");
        return -1;
    }
    return 0;
}

static int check_idle(Producer *self) {
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "the Producer is in feed_run() on another thread");
        return -1;
    }
    return 0;
}

/* -- librdkafka callbacks: C state only, under the lock --------------------------------------------- */

static void copy_text(char *to, size_t size, const char *from) {
    size_t n = from ? strlen(from) : 0;
    if (n >= size) n = size - 1;
    if (n) memcpy(to, from, n);
    to[n] = 0;
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque) {
    Producer *self = opaque;
    pthread_mutex_lock(&self->lock);
    if (!msg->err) {
        /* Counted, not inferred from an empty queue: error events (a broker going down) queue too. */
        self->delivered++;
        pthread_mutex_unlock(&self->lock);
        return;
    }
    if (!self->failed) {
        /* The first failure is the run's error: what follows it is its consequence. */
        self->failed = 1;
        self->fatal = 0;
        self->code = msg->err;
        copy_text(self->text, sizeof(self->text), RDK.err2str(msg->err));
        self->has_topic = msg->rkt != NULL;
        copy_text(self->topic, sizeof(self->topic), msg->rkt ? RDK.topic_name(msg->rkt) : NULL);
        self->partition = msg->partition;
    }
    pthread_mutex_unlock(&self->lock);
}

static void keep(Producer *self, Kept *kept, int level, const char *facility, const char *text) {
    /* One block for both strings: malloc, not PyMem, as this runs without the GIL. */
    size_t nf = facility ? strlen(facility) + 1 : 0, nt = strlen(text) + 1;
    pthread_mutex_lock(&self->lock);
    if (kept->n >= LINES_KEPT) {
        kept->dropped++;
    } else {
        if (!kept->items) kept->items = malloc(sizeof(Line) * LINES_KEPT);
        char *block = kept->items ? malloc(nf + nt) : NULL;
        if (!block) {
            kept->dropped++;
        } else {
            Line *line = &kept->items[kept->n++];
            line->level = level;
            line->text = block;
            memcpy(block, text, nt);
            line->facility = facility ? memcpy(block + nt, facility, nf) : NULL;
        }
    }
    pthread_mutex_unlock(&self->lock);
}

static void kept_free(Kept *kept) {
    for (Py_ssize_t i = 0; i < kept->n; i++) free(kept->items[i].text);
    free(kept->items);
    memset(kept, 0, sizeof(*kept));
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    Producer *self = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        /* The idempotent producer stopped (e.g. a broker lost its sequence): nothing more goes out. */
        char why[512];
        rd_kafka_resp_err_t cause = RDK.fatal_error(rk, why, sizeof(why));
        pthread_mutex_lock(&self->lock);
        if (!self->failed) {
            self->failed = 1;
            self->fatal = 1;
            self->code = cause ? cause : err;
            copy_text(self->text, sizeof(self->text), cause ? why : reason);
            self->has_topic = 0;
            self->partition = -1;
        }
        pthread_mutex_unlock(&self->lock);
        return;
    }
    /* Others are librdkafka's news (a broker down, retried): worth a warning, not a stop. */
    keep(self, &self->errors, err, NULL, reason ? reason : RDK.err2str(err));
}

static void on_log(const rd_kafka_t *rk, int level, const char *facility, const char *text) {
    Producer *self = RDK.opaque(rk);
    if (self) keep(self, &self->logs, level, facility ? facility : "", text ? text : "");
}

static int has_failed(Producer *self) {
    pthread_mutex_lock(&self->lock);
    int failed = self->failed;
    pthread_mutex_unlock(&self->lock);
    return failed;
}

/* -- routes ------------------------------------------------------------------------------------- */

static void route_free(StreamRoute *r) {
    if (r->rkt) RDK.topic_destroy(r->rkt);
    r->rkt = NULL;
    Py_CLEAR(r->stream);
    bytes_free(&r->name);
    bytes_free(&r->topic);
    for (Py_ssize_t i = 0; i < r->nkeys; i++) bytes_free(&r->keys[i]);
    PyMem_Free(r->keys);
    for (Py_ssize_t i = 0; i < r->nheaders; i++) {
        bytes_free(&r->header_names[i]);
        bytes_free(&r->header_values[i]);
    }
    PyMem_Free(r->header_names);
    PyMem_Free(r->header_values);
    memset(r, 0, sizeof(*r));
}

static Py_ssize_t route_find(Producer *self, const char *name, Py_ssize_t len) {
    Py_ssize_t last = self->last;
    if (last < self->nroutes && self->routes[last].name.len == len && memcmp(self->routes[last].name.data, name, (size_t)len) == 0)
        return last;
    for (Py_ssize_t i = 0; i < self->nroutes; i++) {
        StreamRoute *r = &self->routes[i];
        if (r->name.len == len && memcmp(r->name.data, name, (size_t)len) == 0) return self->last = i;
    }
    return -1;
}

static int route_fill(StreamRoute *r, PyObject *stream, PyObject *topic, PyObject *key_fields, const char *key_format,
                      PyObject *headers) {
    if (bytes_from(&r->name, stream, "stream") < 0 || bytes_from(&r->topic, topic, "topic") < 0) return -1;
    Py_INCREF(stream);
    r->stream = stream;
    if (strcmp(key_format, "json") != 0 && strcmp(key_format, "string") != 0) {
        PyErr_Format(PyExc_ValueError, "key_format %s: json or string", key_format);
        return -1;
    }
    r->key_string = key_format[0] == 's';
    PyObject *keys = PySequence_Fast(key_fields, "key_fields must be a sequence of str");
    if (!keys) return -1;
    Py_ssize_t nkeys = PySequence_Fast_GET_SIZE(keys);
    if (r->key_string && nkeys > 1) { /* none: no key, as with json */
        Py_DECREF(keys);
        PyErr_SetString(PyExc_ValueError, "key_format string takes at most one key field");
        return -1;
    }
    r->keys = PyMem_Calloc((size_t)nkeys + 1, sizeof(Bytes));
    if (!r->keys) { Py_DECREF(keys); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < nkeys; i++) {
        PyObject *field = PySequence_Fast_GET_ITEM(keys, i);
        if (!PyUnicode_Check(field)) {
            Py_DECREF(keys);
            PyErr_SetString(PyExc_TypeError, "key_fields must be a sequence of str");
            return -1;
        }
        if (bytes_from(&r->keys[i], field, "a key field") < 0) { Py_DECREF(keys); return -1; }
        r->nkeys = i + 1;
    }
    Py_DECREF(keys);
    PyObject *pairs = PySequence_Fast(headers, "insert_headers must be a sequence of (str, bytes)");
    if (!pairs) return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(pairs);
    r->header_names = PyMem_Calloc((size_t)n + 1, sizeof(Bytes));
    r->header_values = PyMem_Calloc((size_t)n + 1, sizeof(Bytes));
    if (!r->header_names || !r->header_values) { Py_DECREF(pairs); PyErr_NoMemory(); return -1; }
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *pair = PySequence_Fast_GET_ITEM(pairs, i);
        if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
            Py_DECREF(pairs);
            PyErr_SetString(PyExc_TypeError, "insert_headers must be a sequence of (str, bytes)");
            return -1;
        }
        /* nheaders counts pairs filled whole, so route_free frees what was made. */
        if (bytes_from(&r->header_names[i], PyTuple_GET_ITEM(pair, 0), "a header name") < 0) { Py_DECREF(pairs); return -1; }
        if (bytes_from(&r->header_values[i], PyTuple_GET_ITEM(pair, 1), "a header value") < 0) {
            bytes_free(&r->header_names[i]);
            Py_DECREF(pairs);
            return -1;
        }
        r->nheaders = i + 1;
    }
    Py_DECREF(pairs);
    return 0;
}

static PyObject *Producer_register(Producer *self, PyObject *args) {
    PyObject *stream, *topic, *key_fields, *headers;
    const char *key_format;
    if (!PyArg_ParseTuple(args, "UUOsO:register", &stream, &topic, &key_fields, &key_format, &headers)) return NULL;
    if (check_ready(self) < 0 || check_idle(self) < 0) return NULL;
    StreamRoute fresh;
    memset(&fresh, 0, sizeof(fresh));
    if (route_fill(&fresh, stream, topic, key_fields, key_format, headers) < 0) {
        route_free(&fresh);
        return NULL;
    }
    Py_ssize_t at = route_find(self, fresh.name.data, fresh.name.len);
    if (at >= 0) {
        route_free(&self->routes[at]); /* a new SCHEMA: new headers, maybe new keys */
    } else {
        if (self->nroutes == self->cap) {
            Py_ssize_t cap = self->cap ? self->cap * 2 : 8;
            StreamRoute *routes = PyMem_Realloc(self->routes, sizeof(StreamRoute) * (size_t)cap);
            if (!routes) { route_free(&fresh); return PyErr_NoMemory(); }
            self->routes = routes;
            self->cap = cap;
        }
        at = self->nroutes++;
    }
    self->routes[at] = fresh;
    Py_RETURN_NONE;
}

static PyObject *Producer_unregister(Producer *self, PyObject *stream) {
    if (!PyUnicode_Check(stream)) {
        PyErr_SetString(PyExc_TypeError, "stream must be str");
        return NULL;
    }
    if (check_idle(self) < 0) return NULL;
    Py_ssize_t len;
    const char *name = PyUnicode_AsUTF8AndSize(stream, &len);
    if (!name) return NULL;
    Py_ssize_t at = route_find(self, name, len);
    if (at >= 0) {
        route_free(&self->routes[at]);
        self->routes[at] = self->routes[--self->nroutes];
        self->last = 0;
    }
    Py_RETURN_NONE;
}

/* -- a compact RECORD line ------------------------------------------------------------------------ */

typedef struct {
    P start, end;
} Span;

static const char HEAD[] = "{\"type\":\"RECORD\",\"stream\":\"";
static const char RECORD_KEY[] = "\",\"record\":";
static const char VERSION_KEY[] = ",\"version\":";
static const char EXTRACTED_KEY[] = ",\"time_extracted\":\"";
static const char DELETED_AT[] = "_sdc_deleted_at";
#define LIT_LEN(s) ((Py_ssize_t)sizeof(s) - 1)

/*
 * The record object at p (its '{'), validated whole. Each key field's value goes into spans[i];
 * returns the position after the object's '}', or NULL when the line is not one to take here.
 */
static P scan_record(const StreamRoute *r, P p, P e, Span *spans) {
    int nul = 0, deleted_seen = 0;
    for (Py_ssize_t i = 0; i < r->nkeys; i++) spans[i].start = NULL;
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}') return p + 1;
    for (;;) {
        if (p >= e || *p != '"') return NULL;
        P name = p + 1;
        int flags = 0;
        P after = scan_string(name, e, NULL, 0, &flags);
        if (!after) return NULL;
        Py_ssize_t len = after - 1 - name;
        p = skip_ws(after, e);
        if (p >= e || *p != ':') return NULL;
        P value = skip_ws(p + 1, e);
        p = skip_value(value, e, 1, &nul);
        if (!p) return NULL;
        /* An escaped name may decode to a key field's or _sdc_deleted_at: the decoded path knows. */
        if (memchr(name, '\\', (size_t)len)) return NULL;
        if (len == LIT_LEN(DELETED_AT) && memcmp(name, DELETED_AT, (size_t)len) == 0) {
            /* A delete takes the decoded path (delete headers, tombstones). Twice: the last counts there. */
            if (deleted_seen || p - value != 4 || memcmp(value, "null", 4) != 0) return NULL;
            deleted_seen = 1;
        }
        for (Py_ssize_t i = 0; i < r->nkeys; i++) {
            if (r->keys[i].len == len && memcmp(r->keys[i].data, name, (size_t)len) == 0) {
                if (spans[i].start) return NULL; /* twice: the decoded path takes the last one */
                spans[i].start = value;
                spans[i].end = p;
            }
        }
        p = skip_ws(p, e);
        if (p < e && *p == ',') {
            p = skip_ws(p + 1, e);
            continue;
        }
        if (p < e && *p == '}') return p + 1;
        return NULL;
    }
}

/* What follows the record object, as split_compact_record's pattern has it: [version][time_extracted]}. */
static int tail_ok(P p, P e) {
    if (e - p >= LIT_LEN(VERSION_KEY) && memcmp(p, VERSION_KEY, LIT_LEN(VERSION_KEY)) == 0) {
        p += LIT_LEN(VERSION_KEY);
        if (p < e && *p == '-') p++;
        P digits = p;
        while (p < e && *p >= '0' && *p <= '9') p++;
        if (p == digits) return 0;
    }
    if (e - p >= LIT_LEN(EXTRACTED_KEY) && memcmp(p, EXTRACTED_KEY, LIT_LEN(EXTRACTED_KEY)) == 0) {
        p += LIT_LEN(EXTRACTED_KEY);
        while (p < e && *p != '"' && *p != '\\') p++;
        if (p >= e || *p != '"') return 0;
        p++;
    }
    return e - p == 1 && *p == '}';
}

/*
 * A key value whose JSON text orjson would write again byte for byte: an integer of at most 18
 * digits other than -0 (wider ones may be read as a float, -0 is written 0), or a string without a
 * backslash (orjson escapes only what a raw JSON string cannot hold). Sets *text to the key text.
 */
static int plain_key(Span v, int want_string_content, Span *text) {
    P p = v.start, e = v.end;
    if (*p == '"') {
        if (memchr(p + 1, '\\', (size_t)(e - 1 - (p + 1)))) return 0;
        *text = want_string_content ? (Span){p + 1, e - 1} : v;
        return 1;
    }
    if (*p == '-') p++;
    if (p == e || e - p > KEY_DIGITS_MAX) return 0;
    for (P d = p; d < e; d++)
        if (*d < '0' || *d > '9') return 0;
    if (p != v.start && e - p == 1 && *p == '0') return 0; /* -0 */
    *text = v;
    return 1;
}

/* The message key into self->key: 1, or 0 when a key value is missing or not plain. */
static int build_key(Producer *self, const StreamRoute *r, const Span *spans) {
    Buf *k = &self->key;
    k->len = 0;
    Span text;
    if (r->key_string) {
        /* An empty text would go out as no key at all from here, as an empty key from Python. */
        if (!spans[0].start || !plain_key(spans[0], 1, &text) || text.end == text.start) return 0;
        return buf_put(k, (const char *)text.start, text.end - text.start) < 0 ? -1 : 1;
    }
    if (buf_putc(k, '{') < 0) return -1;
    for (Py_ssize_t i = 0; i < r->nkeys; i++) {
        if (!spans[i].start || !plain_key(spans[i], 0, &text)) return 0;
        if ((i && buf_putc(k, ',') < 0) || buf_putc(k, '"') < 0 || buf_put(k, r->keys[i].data, r->keys[i].len) < 0 ||
            buf_put(k, "\":", 2) < 0 || buf_put(k, (const char *)text.start, text.end - text.start) < 0)
            return -1;
    }
    return buf_putc(k, '}') < 0 ? -1 : 1;
}

/* -- producing ---------------------------------------------------------------------------------- */

static rd_kafka_headers_t *route_headers(const StreamRoute *r) {
    if (!r->nheaders) return NULL;
    rd_kafka_headers_t *hdrs = RDK.headers_new((size_t)r->nheaders);
    for (Py_ssize_t i = 0; i < r->nheaders; i++)
        RDK.header_add(hdrs, r->header_names[i].data, r->header_names[i].len, r->header_values[i].data,
                       r->header_values[i].len);
    return hdrs;
}

/*
 * One message of a run: 0 when it is queued, else the error. A full queue is waited on (the GIL
 * released) until the brokers take some of it, unless a failure is in (Python raises it) or the
 * run has taken lines already (`may_wait` 0): a wait can end in KeyboardInterrupt, which must not
 * hide lines already taken, so the run returns them and the next call waits.
 */
static rd_kafka_resp_err_t produce_line(Producer *self, const StreamRoute *r, P value, size_t len, int may_wait,
                                        int *interrupted) {
    const void *key = r->nkeys ? self->key.data : NULL;
    size_t key_len = r->nkeys ? (size_t)self->key.len : 0;
    rd_kafka_headers_t *hdrs = route_headers(r);
    rd_kafka_resp_err_t err;
    for (;;) {
        err = RDK.producev(self->rk, RD_KAFKA_VTYPE_RKT, r->rkt, RD_KAFKA_VTYPE_MSGFLAGS, (int)RD_KAFKA_MSG_F_COPY,
                           RD_KAFKA_VTYPE_VALUE, (void *)value, len, RD_KAFKA_VTYPE_KEY, (void *)key, key_len,
                           RD_KAFKA_VTYPE_HEADERS, hdrs, RD_KAFKA_VTYPE_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL || !may_wait || has_failed(self)) break;
        self->room_waits++;
        Py_BEGIN_ALLOW_THREADS
        RDK.poll(self->rk, ROOM_WAIT_MS);
        Py_END_ALLOW_THREADS
        if (PyErr_CheckSignals() < 0) {
            *interrupted = 1;
            break;
        }
    }
    /* On success librdkafka owns the headers; on failure they are still ours. */
    if (err && hdrs) RDK.headers_destroy(hdrs);
    return err;
}

static PyObject *Producer_feed_run(Producer *self, PyObject *const *args, Py_ssize_t nargs) {
    if (nargs < 3 || nargs > 4) {
        PyErr_SetString(PyExc_TypeError, "feed_run(block, at, limit, byte_limit=None)");
        return NULL;
    }
    if (check_ready(self) < 0 || check_idle(self) < 0) return NULL;
    Py_ssize_t at = PyLong_AsSsize_t(args[1]);
    if (at == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t limit = PyLong_AsSsize_t(args[2]);
    if (limit == -1 && PyErr_Occurred()) return NULL;
    Py_ssize_t byte_limit = PY_SSIZE_T_MAX;
    if (nargs == 4 && args[3] != Py_None) {
        byte_limit = PyLong_AsSsize_t(args[3]);
        if (byte_limit == -1 && PyErr_Occurred()) return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) return NULL;
    if (at < 0 || at > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "at is outside the block");
        return NULL;
    }
    P base = view.buf, end = base + view.len;
    P pos = base + at;
    Py_ssize_t taken = 0, nbytes = 0, first = -1;
    Span spans_small[8], *spans = spans_small;
    Span *spans_big = NULL;
    int interrupted = 0;
    self->busy = 1;
    while (taken < limit && nbytes < byte_limit && pos < end) {
        P line = pos;
        P e = memchr(line, '\n', (size_t)(end - line));
        if (!e) break; /* only whole lines */
        /* The envelope: {"type":"RECORD","stream":"<name>","record":{...}[version][time_extracted]} */
        if (e - line < LIT_LEN(HEAD) || memcmp(line, HEAD, LIT_LEN(HEAD)) != 0) break;
        P name = line + LIT_LEN(HEAD);
        P quote = memchr(name, '"', (size_t)(e - name));
        if (!quote || memchr(name, '\\', (size_t)(quote - name))) break;
        if (e - quote < LIT_LEN(RECORD_KEY) || memcmp(quote, RECORD_KEY, LIT_LEN(RECORD_KEY)) != 0) break;
        P body = quote + LIT_LEN(RECORD_KEY);
        if (body >= e || *body != '{') break;
        Py_ssize_t at_route = route_find(self, (const char *)name, quote - name);
        if (at_route < 0 || (first >= 0 && at_route != first)) break; /* unknown, or another stream: a call is one stream's */
        StreamRoute *r = &self->routes[at_route];
        if (r->nkeys > (Py_ssize_t)(sizeof(spans_small) / sizeof(spans_small[0])) && !spans_big) {
            spans_big = PyMem_Malloc(sizeof(Span) * (size_t)r->nkeys);
            if (!spans_big) { PyErr_NoMemory(); break; }
            spans = spans_big;
        }
        P body_end = scan_record(r, body, e, spans);
        if (!body_end || !tail_ok(body_end, e)) break;
        int keyed = r->nkeys ? build_key(self, r, spans) : 1;
        if (keyed <= 0) break; /* -1: out of memory, raised below (or at the next call) */
        if (!r->rkt) {
            r->rkt = RDK.topic_new(self->rk, r->topic.data, NULL);
            if (!r->rkt) break; /* the decoded path names the topic's problem */
        }
        /* Refused (too large, ...): the decoded path produces the line again and names it. Still full
           after a wait: a failure is in, which Python raises. */
        if (produce_line(self, r, body, (size_t)(body_end - body), taken == 0, &interrupted) || interrupted) break;
        first = at_route;
        taken++;
        nbytes += e + 1 - line;
        pos = e + 1;
        if (++self->since_poll >= POLL_EVERY) {
            self->since_poll = 0;
            RDK.poll(self->rk, 0); /* serves failure reports into C state; no wait */
            if (has_failed(self)) break;
        }
    }
    self->busy = 0;
    PyMem_Free(spans_big);
    PyBuffer_Release(&view);
    if (PyErr_Occurred()) {
        /* Lines taken must be told: the error (out of memory) comes again at the next call's first line. */
        if (!taken) return NULL;
        PyErr_Clear();
    }
    PyObject *stream = first >= 0 ? self->routes[first].stream : Py_None;
    return Py_BuildValue("(nnnO)", (Py_ssize_t)(pos - base), taken, nbytes, stream);
}

/* produce(topic, value=None, key=None, headers=None): confluent-kafka's Producer.produce(), as Delivery calls it. */
static PyObject *Producer_produce(Producer *self, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"topic", "value", "key", "headers", NULL};
    const char *topic;
    Py_buffer value = {0}, key = {0};
    PyObject *headers = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "s|z*z*O:produce", names, &topic, &value, &key, &headers)) return NULL;
    rd_kafka_headers_t *hdrs = NULL;
    PyObject *pairs = NULL;
    if (check_ready(self) < 0) goto fail;
    if (headers != Py_None) {
        pairs = PySequence_Fast(headers, "headers must be a list of (str, bytes) pairs");
        if (!pairs) goto fail;
        Py_ssize_t n = PySequence_Fast_GET_SIZE(pairs);
        hdrs = RDK.headers_new((size_t)(n ? n : 1));
        for (Py_ssize_t i = 0; i < n; i++) {
            PyObject *pair = PySequence_Fast_GET_ITEM(pairs, i), *v;
            Py_ssize_t nlen, vlen = 0;
            const char *hname, *hvalue = NULL;
            if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2 || !PyUnicode_Check(PyTuple_GET_ITEM(pair, 0))) {
                PyErr_SetString(PyExc_TypeError, "headers must be a list of (str, bytes) pairs");
                goto fail;
            }
            if (!(hname = PyUnicode_AsUTF8AndSize(PyTuple_GET_ITEM(pair, 0), &nlen))) goto fail;
            v = PyTuple_GET_ITEM(pair, 1);
            if (PyBytes_Check(v)) {
                hvalue = PyBytes_AS_STRING(v);
                vlen = PyBytes_GET_SIZE(v);
            } else if (PyUnicode_Check(v)) {
                if (!(hvalue = PyUnicode_AsUTF8AndSize(v, &vlen))) goto fail;
            } else if (v != Py_None) {
                PyErr_SetString(PyExc_TypeError, "a header value must be bytes, str or None");
                goto fail;
            }
            RDK.header_add(hdrs, hname, nlen, hvalue, vlen);
        }
    }
    rd_kafka_resp_err_t err = RDK.producev(
        self->rk, RD_KAFKA_VTYPE_TOPIC, topic, RD_KAFKA_VTYPE_MSGFLAGS, (int)RD_KAFKA_MSG_F_COPY, RD_KAFKA_VTYPE_VALUE,
        value.buf, (size_t)value.len, RD_KAFKA_VTYPE_KEY, key.buf, (size_t)key.len, RD_KAFKA_VTYPE_HEADERS, hdrs,
        RD_KAFKA_VTYPE_END);
    if (err) {
        if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            PyErr_SetString(PyExc_BufferError, RDK.err2str(err)); /* as confluent-kafka: the caller polls and retries */
        else
            client_error(err, "Unable to produce message");
        goto fail;
    }
    hdrs = NULL; /* librdkafka's now */
    Py_XDECREF(pairs);
    PyBuffer_Release(&value);
    PyBuffer_Release(&key);
    Py_RETURN_NONE;
fail:
    if (hdrs) RDK.headers_destroy(hdrs);
    Py_XDECREF(pairs);
    PyBuffer_Release(&value);
    PyBuffer_Release(&key);
    return NULL;
}

/* -- waiting and what came of it ------------------------------------------------------------------ */

static PyObject *Producer_poll(Producer *self, PyObject *args) {
    double seconds = -1;
    if (!PyArg_ParseTuple(args, "|d:poll", &seconds) || check_ready(self) < 0) return NULL;
    int ms = timeout_ms(seconds), served;
    Py_BEGIN_ALLOW_THREADS
    served = RDK.poll(self->rk, ms);
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(served);
}

static PyObject *Producer_flush(Producer *self, PyObject *args) {
    double seconds = -1;
    if (!PyArg_ParseTuple(args, "|d:flush", &seconds) || check_ready(self) < 0) return NULL;
    int ms = timeout_ms(seconds);
    Py_BEGIN_ALLOW_THREADS
    RDK.flush(self->rk, ms); /* its _TIMED_OUT says messages are left: the count below says how many */
    Py_END_ALLOW_THREADS
    return PyLong_FromLong(RDK.outq_len(self->rk));
}

static Py_ssize_t Producer_len(Producer *self) {
    return self->rk ? RDK.outq_len(self->rk) : 0;
}

static PyObject *Producer_failure(Producer *self, PyObject *unused) {
    char text[sizeof(self->text)], topic[sizeof(self->topic)];
    pthread_mutex_lock(&self->lock);
    int failed = self->failed, fatal = self->fatal, has_topic = self->has_topic;
    rd_kafka_resp_err_t code = self->code;
    int32_t partition = self->partition;
    memcpy(text, self->text, sizeof(text));
    memcpy(topic, self->topic, sizeof(topic));
    pthread_mutex_unlock(&self->lock);
    if (!failed) Py_RETURN_NONE;
    PyObject *where = has_topic ? PyUnicode_DecodeUTF8(topic, (Py_ssize_t)strlen(topic), "replace") : Py_NewRef(Py_None);
    if (!where) return NULL;
    return Py_BuildValue("(isNNiN)", code, RDK.err2name(code),
                         PyUnicode_DecodeUTF8(text, (Py_ssize_t)strlen(text), "replace"), where, partition,
                         PyBool_FromLong(fatal));
}

static PyObject *kept_take(Producer *self, Kept *from, int errors) {
    pthread_mutex_lock(&self->lock);
    Kept kept = *from;
    memset(from, 0, sizeof(*from));
    pthread_mutex_unlock(&self->lock);
    PyObject *out = PyList_New(0);
    for (Py_ssize_t i = 0; out && i < kept.n; i++) {
        Line *line = &kept.items[i];
        PyObject *text = PyUnicode_DecodeUTF8(line->text, (Py_ssize_t)strlen(line->text), "replace"), *item;
        if (errors) item = Py_BuildValue("(isN)", line->level, RDK.err2name(line->level), text);
        else item = Py_BuildValue("(isN)", line->level, line->facility, text);
        if (!item || PyList_Append(out, item) < 0) Py_CLEAR(out);
        Py_XDECREF(item);
    }
    if (out && kept.dropped) {
        PyObject *item = Py_BuildValue("(isN)", errors ? 0 : 4, errors ? "NO_ERROR" : "DPONE",
                                       PyUnicode_FromFormat("%lu more lines were dropped", kept.dropped));
        if (!item || PyList_Append(out, item) < 0) Py_CLEAR(out);
        Py_XDECREF(item);
    }
    kept_free(&kept);
    return out;
}

static PyObject *Producer_logs(Producer *self, PyObject *unused) {
    return kept_take(self, &self->logs, 0);
}

static PyObject *Producer_errors(Producer *self, PyObject *unused) {
    return kept_take(self, &self->errors, 1);
}

/* topics(timeout): {topic: (partitions, error (code, name, text) or None)} of the whole cluster. */
static PyObject *Producer_topics(Producer *self, PyObject *args) {
    double seconds = -1;
    if (!PyArg_ParseTuple(args, "|d:topics", &seconds) || check_ready(self) < 0) return NULL;
    const rd_kafka_metadata_t *md = NULL;
    int ms = timeout_ms(seconds);
    rd_kafka_resp_err_t err;
    /* Every topic: asking for one would make brokers that create topics on demand create it. */
    Py_BEGIN_ALLOW_THREADS
    err = RDK.metadata(self->rk, 1, NULL, &md, ms);
    Py_END_ALLOW_THREADS
    if (err) return client_error(err, "Failed to get metadata");
    PyObject *out = PyDict_New();
    for (int i = 0; out && i < md->topic_cnt; i++) {
        const rd_kafka_metadata_topic_t *t = &md->topics[i];
        PyObject *error = t->err ? Py_BuildValue("(iss)", t->err, RDK.err2name(t->err), RDK.err2str(t->err))
                                 : Py_NewRef(Py_None);
        PyObject *item = error ? Py_BuildValue("(iN)", t->partition_cnt, error) : NULL;
        if (!item || PyDict_SetItemString(out, t->topic, item) < 0) Py_CLEAR(out);
        Py_XDECREF(item);
    }
    RDK.metadata_destroy(md);
    return out;
}

/* -- the type ----------------------------------------------------------------------------------- */

static PyObject *Producer_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    Producer *self = (Producer *)type->tp_alloc(type, 0);
    if (!self) return NULL;
    if (pthread_mutex_init(&self->lock, NULL) != 0) {
        Py_DECREF(self);
        PyErr_SetString(PyExc_OSError, "pthread_mutex_init failed");
        return NULL;
    }
    self->partition = -1;
    return (PyObject *)self;
}

static int Producer_init(Producer *self, PyObject *args, PyObject *kwargs) {
    PyObject *conf_dict;
    static char *names[] = {"conf", NULL};
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!:Producer", names, &PyDict_Type, &conf_dict)) return -1;
    if (!RDK.producev) {
        PyErr_SetString(PyExc_RuntimeError, "librdkafka is not bound: call load() first");
        return -1;
    }
    if (self->rk) {
        PyErr_SetString(PyExc_RuntimeError, "the Producer is initialised already");
        return -1;
    }
    char why[512];
    rd_kafka_conf_t *conf = RDK.conf_new();
    PyObject *name, *value;
    Py_ssize_t at = 0;
    while (PyDict_Next(conf_dict, &at, &name, &value)) {
        if (!PyUnicode_Check(name) || !PyUnicode_Check(value)) {
            RDK.conf_destroy(conf);
            PyErr_SetString(PyExc_TypeError, "conf must map str to str (librdkafka properties)");
            return -1;
        }
        const char *n = PyUnicode_AsUTF8(name), *v = n ? PyUnicode_AsUTF8(value) : NULL;
        if (!v) {
            RDK.conf_destroy(conf);
            return -1;
        }
        if (RDK.conf_set(conf, n, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            RDK.conf_destroy(conf);
            PyErr_SetString(PyExc_ValueError, why);
            return -1;
        }
    }
    RDK.conf_set_opaque(conf, self);
    RDK.conf_set_dr_msg_cb(conf, on_delivery);
    RDK.conf_set_error_cb(conf, on_error);
    RDK.conf_set_log_cb(conf, on_log);
    rd_kafka_t *rk = RDK.new_(RD_KAFKA_PRODUCER, conf, why, sizeof(why));
    if (!rk) {
        RDK.conf_destroy(conf); /* rd_kafka_new owns it only when it succeeds */
        PyErr_SetString(PyExc_ValueError, why);
        return -1;
    }
    self->rk = rk;
    return 0;
}

static void Producer_dealloc(Producer *self) {
    /* Topic handles first: librdkafka waits for them at destroy. */
    for (Py_ssize_t i = 0; i < self->nroutes; i++) route_free(&self->routes[i]);
    PyMem_Free(self->routes);
    if (self->rk) {
        rd_kafka_t *rk = self->rk;
        self->rk = NULL;
        /* Its threads end here; it may still log or report (into C state, under the lock). */
        Py_BEGIN_ALLOW_THREADS
        RDK.destroy(rk);
        Py_END_ALLOW_THREADS
    }
    kept_free(&self->logs);
    kept_free(&self->errors);
    buf_free(&self->key);
    pthread_mutex_destroy(&self->lock);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *Producer_room_waits(Producer *self, void *closure) {
    return PyLong_FromSsize_t(self->room_waits);
}

static PyObject *Producer_delivered(Producer *self, void *closure) {
    pthread_mutex_lock(&self->lock);
    long long delivered = self->delivered;
    pthread_mutex_unlock(&self->lock);
    return PyLong_FromLongLong(delivered);
}

static PyObject *Producer_name(Producer *self, void *closure) {
    if (check_ready(self) < 0) return NULL;
    return PyUnicode_FromString(RDK.name(self->rk));
}

static PyMethodDef Producer_methods[] = {
    {"produce", (PyCFunction)(void (*)(void))Producer_produce, METH_VARARGS | METH_KEYWORDS,
     "produce(topic, value=None, key=None, headers=None): queue one message (BufferError when the queue is full)."},
    {"feed_run", (PyCFunction)(void (*)(void))Producer_feed_run, METH_FASTCALL,
     "feed_run(block, at, limit, byte_limit=None) -> (end, lines, bytes, stream): produce the run of one registered "
     "stream's compact RECORD lines starting at `at`, up to limit lines or until byte_limit bytes are reached."},
    {"register", (PyCFunction)Producer_register, METH_VARARGS,
     "register(stream, topic, key_fields, key_format, insert_headers): feed_run() takes this stream's lines."},
    {"unregister", (PyCFunction)Producer_unregister, METH_O, "unregister(stream): feed_run() leaves its lines."},
    {"poll", (PyCFunction)Producer_poll, METH_VARARGS, "poll(timeout=-1) -> events served (the GIL released)."},
    {"flush", (PyCFunction)Producer_flush, METH_VARARGS, "flush(timeout=-1) -> messages still not acknowledged."},
    {"failure", (PyCFunction)Producer_failure, METH_NOARGS,
     "The first failure, (code, name, text, topic or None, partition, fatal), or None."},
    {"logs", (PyCFunction)Producer_logs, METH_NOARGS, "The log lines since the last call, [(syslog level, facility, text)]."},
    {"errors", (PyCFunction)Producer_errors, METH_NOARGS,
     "The client's errors since the last call that stopped nothing (error_cb), [(code, name, text)]."},
    {"topics", (PyCFunction)Producer_topics, METH_VARARGS,
     "topics(timeout=-1) -> {topic: (partitions, error or None)} of the cluster (raises ProducerError)."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Producer_getset[] = {
    {"room_waits", (getter)Producer_room_waits, NULL, "Times feed_run() waited for room in a full queue.", NULL},
    {"name", (getter)Producer_name, NULL, "The client's name (rd_kafka_name), as log lines carry it.", NULL},
    {"delivered", (getter)Producer_delivered, NULL, "Messages acknowledged so far (served delivery reports).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PySequenceMethods Producer_as_sequence = {
    .sq_length = (lenfunc)Producer_len,
};

static PyTypeObject ProducerType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dpone_drivers._kafkafast.Producer",
    .tp_basicsize = sizeof(Producer),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Producer(conf: dict[str, str]): a librdkafka producer for target-kafka (see producer.c).",
    .tp_new = Producer_new,
    .tp_init = (initproc)Producer_init,
    .tp_dealloc = (destructor)Producer_dealloc,
    .tp_methods = Producer_methods,
    .tp_getset = Producer_getset,
    .tp_as_sequence = &Producer_as_sequence,
};

int producer_init(PyObject *module) {
    if (PyType_Ready(&ProducerType) < 0) return -1;
    ProducerError = PyErr_NewExceptionWithDoc("dpone_drivers._kafkafast.ProducerError",
                                              "A librdkafka error: args are (code, name, text).", NULL, NULL);
    if (!ProducerError) return -1;
    Py_INCREF(&ProducerType);
    if (PyModule_AddObject(module, "Producer", (PyObject *)&ProducerType) < 0) {
        Py_DECREF(&ProducerType);
        return -1;
    }
    Py_INCREF(ProducerError);
    if (PyModule_AddObject(module, "ProducerError", ProducerError) < 0) {
        Py_DECREF(ProducerError);
        return -1;
    }
    return 0;
}
