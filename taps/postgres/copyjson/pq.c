/* pq_load: libpq's functions from the copy psycopg already loaded (see copyjson.h). */
#include <dlfcn.h>

#include "copyjson.h"

PqApi PQ;

#define RESOLVE(field, symbol)                                  \
    do {                                                        \
        *(void **)(&api.field) = dlsym(lib, symbol);            \
        if (!api.field) {                                       \
            *why = "a libpq function is missing: " symbol;      \
            return -1;                                          \
        }                                                       \
    } while (0)

int pq_load(const char *path, const char **why) {
    if (PQ.get_copy_data) return 0;
    /* RTLD_NOLOAD: the connection's own libpq; a second copy would not know its structures. */
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!lib) {
        *why = "this libpq is not loaded (import psycopg and connect first)";
        return -1;
    }
    PqApi api;
    RESOLVE(get_copy_data, "PQgetCopyData");
    RESOLVE(freemem, "PQfreemem");
    RESOLVE(consume_input, "PQconsumeInput");
    RESOLVE(socket, "PQsocket");
    RESOLVE(error_message, "PQerrorMessage");
    PQ = api;
    return 0;
}
