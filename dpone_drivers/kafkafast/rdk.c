/* rdk_load: librdkafka's functions from the copy confluent-kafka loaded (see rdk.h). */
#include <dlfcn.h>

#include "rdk.h"

RdkApi RDK;

#define RESOLVE(field, symbol)                                      \
    do {                                                            \
        *(void **)(&api.field) = dlsym(lib, symbol);                \
        if (!api.field) {                                           \
            *why = "a librdkafka function is missing: " symbol;     \
            return -1;                                              \
        }                                                           \
    } while (0)

int rdk_load(const char *path, const char **why) {
    if (RDK.producev) return 0;
    /* RTLD_NOLOAD: only the library confluent_kafka already has; never a second copy. */
    void *lib = dlopen(path, RTLD_NOW | RTLD_NOLOAD);
    if (!lib) {
        *why = "librdkafka is not loaded (import confluent_kafka first)";
        return -1;
    }
    RdkApi api;
    RESOLVE(conf_new, "rd_kafka_conf_new");
    RESOLVE(conf_set, "rd_kafka_conf_set");
    RESOLVE(conf_destroy, "rd_kafka_conf_destroy");
    RESOLVE(conf_set_opaque, "rd_kafka_conf_set_opaque");
    RESOLVE(conf_set_dr_msg_cb, "rd_kafka_conf_set_dr_msg_cb");
    RESOLVE(conf_set_error_cb, "rd_kafka_conf_set_error_cb");
    RESOLVE(conf_set_log_cb, "rd_kafka_conf_set_log_cb");
    RESOLVE(new_, "rd_kafka_new");
    RESOLVE(destroy, "rd_kafka_destroy");
    RESOLVE(opaque, "rd_kafka_opaque");
    RESOLVE(poll, "rd_kafka_poll");
    RESOLVE(flush, "rd_kafka_flush");
    RESOLVE(outq_len, "rd_kafka_outq_len");
    RESOLVE(producev, "rd_kafka_producev");
    RESOLVE(err2str, "rd_kafka_err2str");
    RESOLVE(err2name, "rd_kafka_err2name");
    RESOLVE(fatal_error, "rd_kafka_fatal_error");
    RESOLVE(headers_new, "rd_kafka_headers_new");
    RESOLVE(header_add, "rd_kafka_header_add");
    RESOLVE(headers_destroy, "rd_kafka_headers_destroy");
    RESOLVE(topic_partition_list_new, "rd_kafka_topic_partition_list_new");
    RESOLVE(topic_partition_list_add, "rd_kafka_topic_partition_list_add");
    RESOLVE(topic_partition_list_destroy, "rd_kafka_topic_partition_list_destroy");
    RESOLVE(assign, "rd_kafka_assign");
    RESOLVE(poll_set_consumer, "rd_kafka_poll_set_consumer");
    RESOLVE(queue_get_consumer, "rd_kafka_queue_get_consumer");
    RESOLVE(queue_destroy, "rd_kafka_queue_destroy");
    RESOLVE(consume_batch_queue, "rd_kafka_consume_batch_queue");
    RESOLVE(message_destroy, "rd_kafka_message_destroy");
    RESOLVE(message_errstr, "rd_kafka_message_errstr");
    RESOLVE(message_timestamp, "rd_kafka_message_timestamp");
    RESOLVE(message_headers, "rd_kafka_message_headers");
    RESOLVE(pause_partitions, "rd_kafka_pause_partitions");
    RESOLVE(consumer_close, "rd_kafka_consumer_close");
    RESOLVE(set_log_queue, "rd_kafka_set_log_queue");
    RESOLVE(header_get_all, "rd_kafka_header_get_all");
    RESOLVE(topic_new, "rd_kafka_topic_new");
    RESOLVE(topic_destroy, "rd_kafka_topic_destroy");
    RESOLVE(topic_name, "rd_kafka_topic_name");
    RESOLVE(metadata, "rd_kafka_metadata");
    RESOLVE(metadata_destroy, "rd_kafka_metadata_destroy");
    RESOLVE(name, "rd_kafka_name");
    RDK = api;
    return 0;
}
