/*
 * dpone_drivers._kafkafast: the Kafka connectors' per-message work in C, on librdkafka's own API.
 *
 *   rdk.c       librdkafka's functions, resolved from the copy confluent-kafka loaded
 *   producer.c  Producer: target-kafka's RECORD lines -> messages, a run of lines per call
 *   consumer.c  Reader: tap-kafka's messages -> RECORD lines, a batch per call
 *   module.c    the module: load(path) and the types
 *
 * JSON is validated with the COPY encoder's scanner (targets/postgres/copyrows/json_scan.c), so a
 * value these paths pass is a value orjson would accept. Anything they are not sure about goes back
 * to Python, which takes it through the ordinary path and names the problem.
 */
#ifndef DPONE_KAFKAFAST_H
#define DPONE_KAFKAFAST_H

#include "copyrows.h"
#include "rdk.h"

int producer_init(PyObject *module);
int consumer_init(PyObject *module);

#endif
