/*
 * Reader: tap-kafka's bounded read in C. A consumer of its own, assigned to one topic's partitions
 * from their start offsets; read() turns the messages it takes from librdkafka into whole RECORD
 * lines (`head + value + tail`, the framework's envelope), so Python handles a block of lines per
 * call instead of a Message object per message.
 *
 * The rules are the Python path's (taps/kafka/stream.py, messages.py), so both give the same bytes:
 *   - a partition ends at the end offset fixed at start: its message at end - 1 is its last, and a
 *     PARTITION_EOF at or past the end offset ends it too (transaction markers are never delivered);
 *     messages at or past the end offset are dropped (the next run reads them);
 *   - a value that is a JSON object (checked by the COPY encoder's scanner, which passes nothing
 *     orjson would refuse) goes out as its own bytes, each \n and \r replaced by a space: outside
 *     strings they are whitespace, and inside a valid string they cannot be;
 *   - anything else stops the block: a null value (a tombstone), a value the scanner does not pass
 *     (Python decodes it, and either makes a record of it or names the problem), or a consumer
 *     error (Python classifies it). read() returns the lines before it and the stopped message;
 *     the messages fetched after it stay here, in order, for the next call.
 */
#include <time.h>

#include "kafkafast.h"

typedef struct {
    int64_t end;   /* the end offset fixed at start */
    int64_t moved; /* next offset after this call's last line, or -1 */
    int active;    /* assigned and not at its end yet */
} Part;

typedef struct {
    PyObject_HEAD
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue;
    char *topic;
    Part *parts; /* by partition number, `nparts` of them */
    int32_t nparts;
    int remaining;
    int busy; /* read() waits with the GIL released: a second thread must not come in meanwhile */
    Buf head, tail, lines;
    rd_kafka_message_t **msgs; /* fetched; msgs[at..n) not handled yet */
    size_t cap, at, n;
    int32_t *moved; /* partitions with lines in this call */
    int nmoved;
    int32_t *ended; /* partitions that reached their end in this call: paused */
    int nended;
    PyObject *logger;   /* logging.Logger for librdkafka's log lines, or NULL */
    PyObject *error_cb; /* called (code, text) for the client's errors, or NULL: they are logged */
} Reader;

/* Milliseconds on the monotonic clock. */
static int64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * librdkafka's log lines into Python logging, as confluent-kafka's `logger` does. With log.queue
 * they come through the consumer queue, so this runs only on the thread in read() or close(),
 * which released the GIL first: never on librdkafka's own threads, which could hold a lock a
 * thread holding the GIL waits for.
 */
static void log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf) {
    if (!rk) return; /* a line about the configuration, before there is a client: no Reader to ask */
    Reader *self = (Reader *)RDK.opaque(rk);
    if (!self || !self->logger) return;
    static const int levels[8] = {50, 50, 50, 40, 30, 20, 20, 10}; /* syslog -> logging */
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *r = PyObject_CallMethod(self->logger, "log", "isss", levels[level & 7], "%s %s", fac, buf);
    if (r) Py_DECREF(r);
    else PyErr_WriteUnraisable(self->logger); /* a log line that fails must not fail the read */
    PyGILState_Release(gil);
}

/*
 * The client's own errors (a broker down, authentication failed), as confluent-kafka's error_cb.
 * Served from the consumer queue like the log lines, so on the reading thread, never librdkafka's.
 * Errors of a partition's fetch are not these: they come as messages, and read() returns them.
 */
static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque) {
    Reader *self = (Reader *)opaque;
    if (!self || !self->error_cb) return;
    PyGILState_STATE gil = PyGILState_Ensure();
    PyObject *r = PyObject_CallFunction(self->error_cb, "is", err, reason ? reason : RDK.err2str(err));
    if (r) Py_DECREF(r);
    else PyErr_WriteUnraisable(self->error_cb);
    PyGILState_Release(gil);
}

static void destroy_pending(Reader *self) {
    for (size_t i = self->at; i < self->n; i++) RDK.message_destroy(self->msgs[i]);
    self->at = self->n = 0;
}

static void reader_close(Reader *self) {
    if (!self->rk) return;
    destroy_pending(self); /* every message before the handle goes: they hold references into it */
    rd_kafka_t *rk = self->rk;
    rd_kafka_queue_t *queue = self->queue;
    self->rk = NULL;
    self->queue = NULL;
    /* Both wait for librdkafka's threads, which may log through log_cb on this thread. */
    Py_BEGIN_ALLOW_THREADS
    RDK.consumer_close(rk);
    if (queue) RDK.queue_destroy(queue);
    RDK.destroy(rk);
    Py_END_ALLOW_THREADS
}

static void Reader_dealloc(Reader *self) {
    reader_close(self);
    PyMem_Free(self->topic);
    PyMem_Free(self->parts);
    PyMem_Free(self->msgs);
    PyMem_Free(self->moved);
    PyMem_Free(self->ended);
    buf_free(&self->head);
    buf_free(&self->tail);
    buf_free(&self->lines);
    Py_XDECREF(self->logger);
    Py_XDECREF(self->error_cb);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* The conf dict into a librdkafka conf; NULL with a ValueError naming the property. */
static rd_kafka_conf_t *make_conf(PyObject *dict, int with_log, int with_errors) {
    char why[512];
    rd_kafka_conf_t *conf = RDK.conf_new();
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        const char *k = PyUnicode_Check(key) ? PyUnicode_AsUTF8(key) : NULL;
        const char *v = PyUnicode_Check(value) ? PyUnicode_AsUTF8(value) : NULL;
        if (!k || !v) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "conf: keys and values must be str");
            RDK.conf_destroy(conf);
            return NULL;
        }
        if (RDK.conf_set(conf, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            PyErr_Format(PyExc_ValueError, "%s", why);
            RDK.conf_destroy(conf);
            return NULL;
        }
    }
    if (with_log) {
        if (RDK.conf_set(conf, "log.queue", "true", why, sizeof(why)) != RD_KAFKA_CONF_OK) {
            PyErr_Format(PyExc_ValueError, "%s", why);
            RDK.conf_destroy(conf);
            return NULL;
        }
        RDK.conf_set_log_cb(conf, log_cb);
    }
    if (with_errors) RDK.conf_set_error_cb(conf, error_cb);
    return conf;
}

static int Reader_init(Reader *self, PyObject *args, PyObject *kwds) {
    static char *kwlist[] = {"conf", "topic", "assignment", "head", "tail", "logger", "error_cb", NULL};
    PyObject *conf_dict, *assignment, *logger = Py_None, *on_error = Py_None;
    const char *topic, *head, *tail;
    Py_ssize_t topic_len, head_len, tail_len;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O!s#O!y#y#|OO", kwlist, &PyDict_Type, &conf_dict, &topic, &topic_len,
                                     &PyList_Type, &assignment, &head, &head_len, &tail, &tail_len, &logger,
                                     &on_error))
        return -1;
    if (self->rk || self->topic) {
        PyErr_SetString(PyExc_RuntimeError, "a Reader is initialized once");
        return -1;
    }
    if (!RDK.new_) {
        PyErr_SetString(PyExc_RuntimeError, "librdkafka is not bound: call load() first");
        return -1;
    }
    /* The assignment first: a mistake in it is found before any client exists. */
    Py_ssize_t count = PyList_GET_SIZE(assignment);
    int32_t top = -1;
    for (Py_ssize_t i = 0; i < count; i++) {
        int partition;
        long long start, end;
        PyObject *item = PyList_GET_ITEM(assignment, i);
        if (!PyTuple_Check(item) || !PyArg_ParseTuple(item, "iLL", &partition, &start, &end)) {
            if (!PyErr_Occurred()) PyErr_SetString(PyExc_TypeError, "assignment: (partition, start, end) tuples");
            return -1;
        }
        if (partition < 0 || start < 0) {
            PyErr_SetString(PyExc_ValueError, "assignment: a partition and its start offset are >= 0");
            return -1;
        }
        if (partition > top) top = partition;
    }
    self->nparts = top + 1;
    self->parts = PyMem_Calloc((size_t)self->nparts + 1, sizeof(Part));
    self->topic = copy_name(topic, topic_len);
    if (!self->parts || !self->topic) {
        PyErr_NoMemory();
        return -1;
    }
    if (buf_put(&self->head, head, head_len) < 0 || buf_put(&self->tail, tail, tail_len) < 0) return -1;
    rd_kafka_topic_partition_list_t *list = RDK.topic_partition_list_new((int)count);
    for (Py_ssize_t i = 0; i < count; i++) {
        int partition;
        long long start, end;
        PyArg_ParseTuple(PyList_GET_ITEM(assignment, i), "iLL", &partition, &start, &end); /* checked above */
        Part *part = &self->parts[partition];
        if (part->active) {
            RDK.topic_partition_list_destroy(list);
            PyErr_Format(PyExc_ValueError, "assignment: partition %d is listed twice", partition);
            return -1;
        }
        if (start >= end) continue; /* nothing to read: never assigned, never waited for */
        part->end = end;
        part->moved = -1;
        part->active = 1;
        self->remaining++;
        RDK.topic_partition_list_add(list, self->topic, partition)->offset = start;
    }
    if (logger != Py_None) {
        Py_INCREF(logger);
        self->logger = logger;
    }
    if (on_error != Py_None) {
        Py_INCREF(on_error);
        self->error_cb = on_error;
    }
    rd_kafka_conf_t *conf = make_conf(conf_dict, self->logger != NULL, self->error_cb != NULL);
    if (!conf) {
        RDK.topic_partition_list_destroy(list);
        return -1;
    }
    RDK.conf_set_opaque(conf, self);
    char why[512];
    rd_kafka_t *rk = RDK.new_(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (!rk) {
        RDK.conf_destroy(conf); /* rd_kafka_new takes it only when it succeeds */
        RDK.topic_partition_list_destroy(list);
        PyErr_Format(PyExc_ValueError, "%s", why);
        return -1;
    }
    self->rk = rk;
    if (self->logger) RDK.set_log_queue(rk, NULL); /* logs to the main queue, which goes to ours below */
    RDK.poll_set_consumer(rk);
    self->queue = RDK.queue_get_consumer(rk); /* NULL without a group.id */
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    if (self->queue && self->remaining) {
        Py_BEGIN_ALLOW_THREADS /* waits for librdkafka's main thread */
        err = RDK.assign(rk, list);
        Py_END_ALLOW_THREADS
    }
    RDK.topic_partition_list_destroy(list);
    if (!self->queue) {
        PyErr_SetString(PyExc_ValueError, "the Reader's consumer needs a group.id");
        reader_close(self);
        return -1;
    }
    if (err) {
        PyErr_Format(PyExc_RuntimeError, "assigning the partitions of %s: %s [%s]", self->topic, RDK.err2str(err),
                     RDK.err2name(err));
        reader_close(self);
        return -1;
    }
    return 0;
}

/* A value that is one JSON object, and only whitespace around it. */
static int json_object_value(const char *value, size_t len) {
    P p = (P)value, e = p + len;
    p = skip_ws(p, e);
    if (p >= e || *p != '{') return 0;
    int nul = 0; /* "\u0000" in a string: orjson takes it, and so does the passed-through value */
    p = skip_value(p, e, 0, &nul);
    if (!p) {
        PyErr_Clear(); /* the scanner's number check may leave one; the Python path names the problem */
        return 0;
    }
    return skip_ws(p, e) == e;
}

/* head + value (\n and \r as spaces) + tail. */
static int put_line(Reader *self, const char *value, size_t len) {
    Buf *b = &self->lines;
    Py_ssize_t need = self->head.len + (Py_ssize_t)len + self->tail.len;
    if (b->len + need > b->cap && buf_grow(b, need) < 0) return -1;
    char *o = b->data + b->len;
    memcpy(o, self->head.data, (size_t)self->head.len);
    o += self->head.len;
    memcpy(o, value, len);
    for (char *c = memchr(o, '\n', len); c; c = memchr(c + 1, '\n', (size_t)(o + len - c - 1))) *c = ' ';
    for (char *c = memchr(o, '\r', len); c; c = memchr(c + 1, '\r', (size_t)(o + len - c - 1))) *c = ' ';
    o += len;
    memcpy(o, self->tail.data, (size_t)self->tail.len);
    b->len += need;
    return 0;
}

static Part *part_of(Reader *self, int32_t partition) {
    return (partition >= 0 && partition < self->nparts && self->parts[partition].active) ? &self->parts[partition]
                                                                                           : NULL;
}

static int finish(Reader *self, Part *part) {
    part->active = 0;
    self->remaining--;
    self->ended[self->nended++] = (int32_t)(part - self->parts);
    return 0;
}

static PyObject *bytes_or_none(const void *data, size_t len) {
    if (!data) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)len);
}

/* The message as (partition, offset, key, value, timestamp type, timestamp ms, headers). */
static PyObject *message_tuple(const rd_kafka_message_t *m) {
    int tstype = 0;
    int64_t ts = RDK.message_timestamp(m, &tstype);
    PyObject *headers = Py_None;
    Py_INCREF(headers);
    rd_kafka_headers_t *hdrs = NULL;
    if (RDK.message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR && hdrs) {
        Py_DECREF(headers);
        headers = PyList_New(0);
        if (!headers) return NULL;
        const char *name;
        const void *value;
        size_t size;
        for (size_t i = 0; RDK.header_get_all(hdrs, i, &name, &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR; i++) {
            PyObject *pair = Py_BuildValue("(NN)", PyUnicode_DecodeUTF8(name, (Py_ssize_t)strlen(name), "replace"),
                                           bytes_or_none(value, size));
            if (!pair || PyList_Append(headers, pair) < 0) {
                Py_XDECREF(pair);
                Py_DECREF(headers);
                return NULL;
            }
            Py_DECREF(pair);
        }
    }
    return Py_BuildValue("(iLNNiLN)", (int)m->partition, (long long)m->offset, bytes_or_none(m->key, m->key_len),
                         bytes_or_none(m->payload, m->len), tstype, (long long)ts, headers);
}

/* A consumer error as (code, name, text, partition or None), for dpone_drivers.kafka.classify. */
static PyObject *error_tuple(const rd_kafka_message_t *m) {
    PyObject *partition = m->partition >= 0 ? PyLong_FromLong(m->partition) : (Py_INCREF(Py_None), Py_None);
    const char *text = RDK.message_errstr(m);
    return Py_BuildValue("(issN)", (int)m->err, RDK.err2name(m->err), text ? text : RDK.err2str(m->err), partition);
}

/*
 * Handle msgs[at..n) until `max` lines, the end of every partition, or a stop. Returns 0, 1 with
 * *stop set, or -1 with a Python error (the message at `at` is then kept).
 */
static int handle(Reader *self, Py_ssize_t max, Py_ssize_t *count, PyObject **stop) {
    while (self->at < self->n && *count < max && self->remaining > 0) {
        rd_kafka_message_t *m = self->msgs[self->at];
        Part *part = part_of(self, m->partition);
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                /* What the partition has now; past the end offset only when the last messages
                   before it were transaction markers. */
                if (part && m->offset >= part->end) finish(self, part);
            } else {
                if (!(*stop = error_tuple(m))) return -1;
            }
        } else if (!part || m->offset >= part->end) {
            /* written after the run started, or a partition already at its end: the next run's */
        } else if (m->payload && json_object_value(m->payload, m->len)) {
            if (put_line(self, m->payload, m->len) < 0) return -1;
            ++*count;
            if (part->moved < 0) self->moved[self->nmoved++] = m->partition;
            part->moved = m->offset + 1;
            if (m->offset + 1 >= part->end) finish(self, part);
        } else {
            /* Python's: its offset moves there, after the lines before it are written. */
            if (!(*stop = message_tuple(m))) return -1;
            if (m->offset + 1 >= part->end) finish(self, part);
        }
        RDK.message_destroy(m);
        self->at++;
        if (*stop) return 1;
    }
    return 0;
}

static PyObject *Reader_read(Reader *self, PyObject *args) {
    Py_ssize_t max;
    double timeout;
    if (!PyArg_ParseTuple(args, "nd", &max, &timeout)) return NULL;
    if (!self->rk) {
        PyErr_SetString(PyExc_RuntimeError, "the Reader is closed");
        return NULL;
    }
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Reader.read() is running in another thread");
        return NULL;
    }
    if (max < 1) max = 1;
    if ((size_t)max > self->cap) {
        /* Pending messages keep their place: realloc moves them as they are. */
        rd_kafka_message_t **msgs = PyMem_Realloc(self->msgs, (size_t)max * sizeof(*msgs));
        if (!msgs) return PyErr_NoMemory();
        self->msgs = msgs;
        self->cap = (size_t)max;
    }
    if (!self->moved) {
        self->moved = PyMem_Malloc(((size_t)self->nparts + 1) * sizeof(int32_t));
        self->ended = PyMem_Malloc(((size_t)self->nparts + 1) * sizeof(int32_t));
        if (!self->moved || !self->ended) return PyErr_NoMemory();
    }
    /* A call that failed half-way leaves marks behind: this call's lines start from none. */
    for (int i = 0; i < self->nmoved; i++) self->parts[self->moved[i]].moved = -1;
    self->lines.len = 0;
    self->nmoved = self->nended = 0;
    Py_ssize_t count = 0;
    PyObject *stop = NULL;
    int64_t deadline = now_ms() + (int64_t)(timeout * 1000);
    int rc = handle(self, max, &count, &stop);
    while (rc == 0 && count < max && self->remaining > 0) {
        int64_t left = deadline - now_ms();
        if (left < 0) break;
        /* Slices of at most 10 ms: the wait is for `max - count` messages, and the last of a run
           are followed by nothing (their partitions' EOF events end it), so a long wait there
           would only wait. */
        int slice = left > 10 ? 10 : (int)left;
        size_t want = (size_t)(max - count);
        ssize_t got;
        self->busy = 1;
        Py_BEGIN_ALLOW_THREADS
        got = RDK.consume_batch_queue(self->queue, slice, self->msgs, want);
        Py_END_ALLOW_THREADS
        self->busy = 0;
        if (got < 0) {
            PyErr_SetString(PyExc_RuntimeError, "rd_kafka_consume_batch_queue failed");
            rc = -1;
            break;
        }
        self->at = 0;
        self->n = (size_t)got;
        if (got) rc = handle(self, max, &count, &stop);
        else if (!slice) break;
    }
    if (self->nended) {
        /* Nothing more is read from them this run: no more fetching either. */
        rd_kafka_topic_partition_list_t *list = RDK.topic_partition_list_new(self->nended);
        for (int i = 0; i < self->nended; i++) RDK.topic_partition_list_add(list, self->topic, self->ended[i]);
        RDK.pause_partitions(self->rk, list);
        RDK.topic_partition_list_destroy(list);
    }
    if (rc < 0) {
        Py_XDECREF(stop);
        return NULL;
    }
    PyObject *moved = PyDict_New();
    if (!moved) {
        Py_XDECREF(stop);
        return NULL;
    }
    for (int i = 0; i < self->nmoved; i++) {
        Part *part = &self->parts[self->moved[i]];
        PyObject *k = PyLong_FromLong(self->moved[i]), *v = PyLong_FromLongLong(part->moved);
        part->moved = -1;
        if (!k || !v || PyDict_SetItem(moved, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            Py_DECREF(moved);
            Py_XDECREF(stop);
            return NULL;
        }
        Py_DECREF(k);
        Py_DECREF(v);
    }
    PyObject *lines = PyBytes_FromStringAndSize(self->lines.data, self->lines.len);
    if (self->lines.cap > ((Py_ssize_t)64 << 20)) buf_free(&self->lines); /* a huge block's room is not kept */
    if (!lines) {
        Py_DECREF(moved);
        Py_XDECREF(stop);
        return NULL;
    }
    if (!stop) {
        stop = Py_None;
        Py_INCREF(stop);
    }
    return Py_BuildValue("(NnNiN)", lines, count, moved, self->remaining, stop);
}

static PyObject *Reader_close(Reader *self, PyObject *unused) {
    if (self->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Reader.read() is running in another thread");
        return NULL;
    }
    reader_close(self);
    Py_RETURN_NONE;
}

static PyObject *Reader_remaining(Reader *self, void *unused) { return PyLong_FromLong(self->remaining); }

static PyObject *Reader_open_partitions(Reader *self, PyObject *unused) {
    PyObject *list = PyList_New(0);
    for (int32_t p = 0; list && p < self->nparts; p++) {
        if (!self->parts[p].active) continue;
        PyObject *n = PyLong_FromLong(p);
        if (!n || PyList_Append(list, n) < 0) Py_CLEAR(list);
        Py_XDECREF(n);
    }
    return list;
}

static PyMethodDef Reader_methods[] = {
    {"read", (PyCFunction)Reader_read, METH_VARARGS,
     "read(max_messages, timeout_seconds) -> (lines, count, next_offsets, remaining, stop)"},
    {"close", (PyCFunction)Reader_close, METH_NOARGS, "Close the consumer (also on dealloc)."},
    {"open_partitions", (PyCFunction)Reader_open_partitions, METH_NOARGS,
     "The partitions not read to their end offset yet, in order."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Reader_getset[] = {
    {"remaining", (getter)Reader_remaining, NULL, "Partitions not at their end offset yet.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "dpone_drivers._kafkafast.Reader",
    .tp_basicsize = sizeof(Reader),
    .tp_dealloc = (destructor)Reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reader(conf, topic, assignment, head, tail, logger=None, error_cb=None): one topic's partitions "
              "read from their start offsets to their end offsets, as RECORD lines. assignment: [(partition, "
              "start, end)]; error_cb(code, text): the client's errors (else logged).",
    .tp_methods = Reader_methods,
    .tp_getset = Reader_getset,
    .tp_init = (initproc)Reader_init,
    .tp_new = PyType_GenericNew,
};

int consumer_init(PyObject *module) {
    if (PyType_Ready(&ReaderType) < 0) return -1;
    Py_INCREF(&ReaderType);
    if (PyModule_AddObject(module, "Reader", (PyObject *)&ReaderType) < 0) {
        Py_DECREF(&ReaderType);
        return -1;
    }
    return 0;
}
