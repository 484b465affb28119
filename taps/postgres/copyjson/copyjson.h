/*
 * dpone.taps.postgres._copyjson: PostgreSQL COPY text rows -> Singer RECORD lines (or JSONL), without a
 * Python object per row or per value: the reverse of the target's encoder (targets/postgres/copyrows/),
 * whose byte buffer this shares.
 *
 *   pq.c       libpq's functions, from the copy psycopg loaded (never a second copy)
 *   reader.c   Reader: pulls COPY rows off the connection and writes each as one JSON object
 *   module.c   the module and its constants
 *
 * The server sends each row with its type's text output function (COPY ... TO STDOUT, text format);
 * every column has a kind saying how that text becomes the JSON value the server's row_to_json would
 * have written. Kinds are chosen in Python (taps/postgres/copy_lines.py) only where the two agree for
 * every value the type can hold; any other column is selected as to_json(...) and passed through.
 */
#ifndef DPONE_COPYJSON_H
#define DPONE_COPYJSON_H

#include "copyrows.h"

enum {
    K_INT = 0,  /* integer text, written as is */
    K_FLOAT,    /* float text: NaN and the infinities as strings, -0 as -0.0 */
    K_BOOL,     /* t / f */
    K_TEXT,     /* any text, as a JSON string */
    K_TIMESTAMP,/* ISO DateStyle text, as the XSD form row_to_json writes */
    K_BYTEA,    /* hex bytea_output, as base64 */
    K_JSON,     /* JSON text (json, jsonb, to_json(...)), passed through */
    K_JSON_DOC, /* the same, counting documents that are JSON null (a json/jsonb column) */
    K_COUNT
};

enum { KEY_NONE = 0, KEY_JSON, KEY_INTS }; /* how a row's bookmark key follows its columns */

typedef struct {
    int (*get_copy_data)(void *conn, char **buffer, int async);
    void (*freemem)(void *ptr);
    int (*consume_input)(void *conn);
    int (*socket)(const void *conn);
    char *(*error_message)(const void *conn);
} PqApi;

extern PqApi PQ;
int pq_load(const char *path, const char **why);

extern PyTypeObject ReaderType;

#endif
