/*
 * Frame progress from C (Wire Spec §10.2.2): one process, one thread, a producer that
 * fills each frame row by row (as a camera DMA would) and reports the rows written, and a
 * consumer that opted in and reads the rows already there while the frame is still being
 * written, then the whole frame once it is published.
 *
 *   progress --frames 20 --rows 64 --row-bytes 1024 [shared client options]
 *
 * Every prefix and every frame is checked against the examples' pattern (byte i of frame
 * s is (s + i) mod 251). Prints one JSON line:
 *   {"role":"progress","frames":20,"prefixes":..,"prefix_bytes":..,"verify_failures":0}
 * and exits 0 when every frame arrived, some prefixes did, and nothing failed a check.
 */
#include "example_common.h"

#define ROLE "progress"

typedef struct options {
    example_client_options client;
    uint64_t frames;
    uint32_t rows;
    uint32_t row_bytes;
    uint64_t timeout_s;
} options;

typedef struct report {
    uint64_t frames;
    uint64_t prefixes;
    uint64_t prefix_bytes;
    uint64_t verify_failures;
} report;

/* What the progress handler sees, for the caller to judge once the poll says DELIVERED. */
typedef struct seen_prefix {
    const uint8_t *table;
    uint64_t seq;
    size_t len;
    bool intact;
} seen_prefix;

static void on_prefix(const tp_frame_prefix *p, void *user) {
    seen_prefix *seen = (seen_prefix *)user;
    seen->seq = p->seq;
    seen->len = p->prefix_len;
    seen->intact = p->prefix_len == 0 ||
                   memcmp(p->prefix, example_pattern(seen->table, p->seq), p->prefix_len) == 0;
}

typedef struct seen_frame {
    const uint8_t *table;
    uint64_t seq;
    bool intact;
} seen_frame;

static void on_frame(const tp_frame *frame, void *user) {
    seen_frame *seen = (seen_frame *)user;
    tp_frame_info info;
    if (tp_frame_get(frame, &info) != TP_OK) {
        seen->intact = false;
        return;
    }
    seen->seq = info.seq;
    seen->intact = memcmp(info.payload, example_pattern(seen->table, info.seq),
                          info.payload_len) == 0;
}

static void parse(int argc, char **argv, options *o) {
    example_client_defaults(&o->client);
    o->frames = 20;
    o->rows = 64;
    o->row_bytes = 1024;
    o->timeout_s = 30;
    for (int i = 1; i < argc; i++) {
        if (example_client_option(ROLE, "--client-id", &o->client, argc, argv, &i)) {
            continue;
        }
        const char *flag = argv[i];
        if (i + 1 >= argc) {
            fprintf(stderr, ROLE ": %s needs a value\n", flag);
            exit(2);
        }
        const char *value = argv[++i];
        if (strcmp(flag, "--frames") == 0) {
            o->frames = example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--rows") == 0) {
            o->rows = example_parse_u32(ROLE, flag, value);
        } else if (strcmp(flag, "--row-bytes") == 0) {
            o->row_bytes = example_parse_u32(ROLE, flag, value);
        } else if (strcmp(flag, "--timeout-s") == 0) {
            o->timeout_s = example_parse_u64(ROLE, flag, value);
        } else {
            fprintf(stderr, ROLE ": unknown option %s\n", flag);
            exit(2);
        }
    }
}

/* One duty cycle of each; false on a failure. */
static bool cycle(tp_producer *producer, tp_consumer *consumer) {
    tp_status status = tp_producer_do_work(producer, NULL);
    if (status == TP_OK) {
        status = tp_consumer_do_work(consumer, NULL);
    }
    if (status != TP_OK) {
        example_report(ROLE, "duty cycle", status);
        return false;
    }
    return true;
}

/* Reads every prefix that is waiting. */
static bool drain_prefixes(tp_consumer *consumer, const uint8_t *table, report *r) {
    for (;;) {
        tp_status status = tp_consumer_do_work(consumer, NULL);
        seen_prefix seen = {table, 0, 0, false};
        int outcome = TP_PROGRESS_EMPTY;
        if (status == TP_OK) {
            status = tp_consumer_poll_progress(consumer, on_prefix, &seen, &outcome);
        }
        if (status != TP_OK) {
            example_report(ROLE, "polling progress", status);
            return false;
        }
        if (outcome == TP_PROGRESS_EMPTY) {
            return true;
        }
        if (outcome == TP_PROGRESS_DELIVERED) {
            r->prefixes++;
            r->prefix_bytes += seen.len;
            r->verify_failures += seen.intact ? 0 : 1;
        }
    }
}

static bool run(const options *o, report *r) {
    tp_config *config = example_config(ROLE, &o->client);
    if (config == NULL) {
        return false;
    }
    /* Hints: a report at most every 100 us, for 4 KiB or 1 row of advance. */
    tp_status status = tp_config_set_progress(config, 1, 100, 4096, 1);
    tp_consumer *consumer = NULL;
    tp_producer *producer = NULL;
    if (status == TP_OK) {
        status = tp_consumer_create(config, o->client.stream_id, &consumer);
    }
    if (status == TP_OK) {
        status = tp_producer_create(config, o->client.stream_id, &producer);
    }
    tp_config_close(config);
    size_t len = (size_t)o->rows * o->row_bytes;
    uint8_t *table = example_pattern_table(len);
    tp_tensor tensor;
    memset(&tensor, 0, sizeof tensor);
    tensor.dtype = TP_DTYPE_UINT8;
    tensor.major_order = TP_MAJOR_ORDER_ROW;
    tensor.ndims = 2;
    tensor.dims[0] = (int32_t)o->rows;
    tensor.dims[1] = (int32_t)o->row_bytes;
    tensor.progress_unit = TP_PROGRESS_ROWS;
    tensor.progress_stride_bytes = o->row_bytes;
    bool ok = status == TP_OK && table != NULL;
    if (!ok) {
        example_report(ROLE, "setting up", status);
    }
    double deadline = example_now_s() + (double)o->timeout_s;
    /* Until both are attached and mapped (the consumer's hello then reaches the producer
     * within a few cycles). */
    for (;;) {
        tp_producer_info pinfo;
        tp_consumer_info cinfo;
        if (!ok || !cycle(producer, consumer)) {
            ok = false;
            break;
        }
        if (tp_producer_get_info(producer, &pinfo) == TP_OK && pinfo.attached &&
            tp_consumer_get_info(consumer, &cinfo) == TP_OK && cinfo.ready &&
            cinfo.mapped_epoch == pinfo.epoch) {
            break;
        }
        if (example_now_s() > deadline) {
            fprintf(stderr, ROLE ": not attached within %llu s\n",
                    (unsigned long long)o->timeout_s);
            ok = false;
            break;
        }
        example_sleep_ns(1000000L);
    }
    for (uint64_t n = 0; ok && n < o->frames && !example_interrupted; n++) {
        for (int k = 0; k < 20 && ok; k++) {
            ok = cycle(producer, consumer);
        }
        tp_claim claim;
        status = tp_producer_claim_with_progress(producer, len, &tensor, tp_monotonic_now_ns(),
                                                 &claim);
        if (status != TP_OK) {
            example_report(ROLE, "claim", status);
            ok = false;
            break;
        }
        const uint8_t *pattern = example_pattern(table, claim.seq);
        for (uint32_t row = 0; ok && row < o->rows; row++) {
            size_t at = (size_t)row * o->row_bytes;
            memcpy(claim.data + at, pattern + at, o->row_bytes);
            status = tp_producer_report_progress(producer, at + o->row_bytes,
                                                 tp_monotonic_now_ns(), NULL);
            if (status != TP_OK) {
                example_report(ROLE, "report", status);
                ok = false;
            }
            ok = ok && drain_prefixes(consumer, table, r);
            example_sleep_ns(150000L); /* the next row lands later */
        }
        if (ok && (status = tp_producer_commit_filled(producer, tp_monotonic_now_ns(), NULL)) !=
                      TP_OK) {
            example_report(ROLE, "commit", status);
            ok = false;
        }
        /* The frame itself, as for every consumer. */
        while (ok) {
            seen_frame seen = {table, 0, false};
            tp_poll_result result;
            if (!cycle(producer, consumer) ||
                tp_consumer_poll(consumer, on_frame, &seen, &result) != TP_OK) {
                ok = false;
                break;
            }
            if (result.outcome == TP_POLL_DELIVERED && seen.seq == claim.seq) {
                r->frames++;
                r->verify_failures += seen.intact ? 0 : 1;
                break;
            }
            if (example_now_s() > deadline) {
                fprintf(stderr, ROLE ": frame %llu never arrived\n",
                        (unsigned long long)claim.seq);
                ok = false;
            }
        }
        ok = ok && drain_prefixes(consumer, table, r);
    }
    free(table);
    tp_producer_close(producer);
    tp_consumer_close(consumer);
    return ok && r->frames == o->frames && r->prefixes > 0 && r->verify_failures == 0;
}

int main(int argc, char **argv) {
    options o;
    parse(argc, argv, &o);
    example_install_signals();
    report r = {0, 0, 0, 0};
    bool ok = run(&o, &r);
    printf("{\"role\":\"progress\",\"frames\":%llu,\"prefixes\":%llu,\"prefix_bytes\":%llu,"
           "\"verify_failures\":%llu}\n",
           (unsigned long long)r.frames, (unsigned long long)r.prefixes,
           (unsigned long long)r.prefix_bytes, (unsigned long long)r.verify_failures);
    return ok ? 0 : 1;
}
