/*
 * Misuse of the C ABI returns the documented codes: NULL pointers, bad arguments,
 * closed and wrong-kind handles, another thread, wrong call order (commit or abort
 * without a claim, a second claim, a duty cycle during a claim), re-entry from a frame
 * callback, and a frame view used after its poll returned. Needs a running tp-driver
 * (the examples' client flags). Prints one line per failed check and exits 0 only if
 * every check held.
 */
#include "example_common.h"

#include <pthread.h>

static int checks = 0;
static int failures = 0;

#define EXPECT(call, expected)                                                                 \
    do {                                                                                       \
        tp_status got_ = (call);                                                               \
        checks++;                                                                              \
        if (got_ != (expected)) {                                                              \
            failures++;                                                                        \
            printf("FAILED line %d: %s gave %s (%s), expected %s\n", __LINE__, #call,          \
                   tp_status_name(got_), tp_last_error_message(), tp_status_name(expected));   \
        }                                                                                      \
    } while (0)

#define CHECK(condition)                                                                       \
    do {                                                                                       \
        checks++;                                                                              \
        if (!(condition)) {                                                                    \
            failures++;                                                                        \
            printf("FAILED line %d: %s\n", __LINE__, #condition);                              \
        }                                                                                      \
    } while (0)

typedef struct callback_state {
    tp_consumer *consumer;
    const tp_frame *kept;
    tp_status reentry;
    tp_status get;
    int calls;
} callback_state;

static void on_frame(const tp_frame *frame, void *user) {
    callback_state *s = (callback_state *)user;
    tp_frame_info info;
    s->calls++;
    s->kept = frame;
    s->get = tp_frame_get(frame, &info);
    s->reentry = tp_consumer_do_work(s->consumer, NULL);
}

typedef struct meta_seen {
    uint32_t meta_version;
    int32_t meta_status;
} meta_seen;

static void on_meta_frame(const tp_frame *frame, void *user) {
    meta_seen *m = (meta_seen *)user;
    tp_frame_info info;
    if (tp_frame_get(frame, &info) == TP_OK) {
        m->meta_version = info.meta_version;
        m->meta_status = info.meta_status;
    }
}

typedef struct batch_state {
    int frames;
    int delivered;
    uint64_t seqs[8];
} batch_state;

static void on_batch_frame(const tp_frame *frame, void *user) {
    (void)frame;
    ((batch_state *)user)->frames++;
}

static void on_batch_outcome(const tp_poll_result *result, void *user) {
    batch_state *s = (batch_state *)user;
    if (result->outcome == TP_POLL_DELIVERED && s->delivered < 8) {
        s->seqs[s->delivered++] = result->seq;
    }
}

static void *other_thread(void *producer) {
    static tp_status status;
    status = tp_producer_do_work((tp_producer *)producer, NULL);
    return &status;
}

static void config_checks(void) {
    tp_config *config = NULL;
    EXPECT(tp_config_create(NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_config_create(&config), TP_OK);
    EXPECT(tp_config_set_aeron_dir(NULL, "/tmp"), TP_ERROR_NULL_POINTER);
    EXPECT(tp_config_set_aeron_dir(config, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_config_set_channel(config, "udp://nowhere"), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_stream_ids(config, 0, 1001, 1100, 1200), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_stream_ids(config, 1000, 1001, 1100, 3000000000u),
           TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_publish_mode(config, 7), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_allowed_base_dir(config, "relative/dir"), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_keepalive_interval_ms(config, 0), TP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(tp_last_error_message(), "keepalive") != NULL);
    EXPECT(tp_config_set_per_consumer_descriptor(config, "aeron:ipc", 0),
           TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_max_outstanding_seq_gap(config, 0), TP_OK);
    EXPECT(tp_config_set_metadata_stream(config, NULL, 0), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_metadata_stream(config, "udp://nowhere", 1300), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_metadata_stream(config, NULL, 1300), TP_OK);
    EXPECT(tp_config_set_metadata_interval_ms(config, 0), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_metadata_interval_ms(config, 200), TP_OK);
    EXPECT(tp_config_set_watch_next_slot(config, 2), TP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(tp_last_error_message(), "watch_next_slot") != NULL);
    EXPECT(tp_config_set_watch_next_slot(config, 1), TP_OK);
    EXPECT(tp_config_set_progress(config, 2, 0, 0, 0), TP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(tp_last_error_message(), "progress") != NULL);
    EXPECT(tp_config_set_progress(config, 1, 250, 0, 0), TP_OK);
    EXPECT(tp_config_set_progress(NULL, 1, 0, 0, 0), TP_ERROR_NULL_POINTER);
    EXPECT(tp_config_set_rate_limit(config, 30), TP_OK);
    EXPECT(tp_config_set_rate_limit(config, 0), TP_OK);
    EXPECT(tp_producer_report_progress(NULL, 0, 0, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_producer_commit_filled(NULL, 0, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_consumer_poll_progress(NULL, NULL, NULL, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_config_set_attach_timeout_ms(config, 0), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_config_set_attach_timeout_ms(config, 500), TP_OK);
    EXPECT(tp_config_set_publish_mode(config, TP_PUBLISH_EXISTING_OR_CREATE), TP_OK);
    EXPECT(tp_config_set_per_consumer_descriptor(config, NULL, 0), TP_OK);
    EXPECT(tp_config_close(config), TP_OK);
    EXPECT(tp_config_close(config), TP_ERROR_CLOSED_HANDLE);
    EXPECT(tp_config_set_client_id(config, 5), TP_ERROR_CLOSED_HANDLE);
    EXPECT(tp_config_close(NULL), TP_OK);

    tp_tensor tensor;
    EXPECT(tp_tensor_bytes(16, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_tensor_bytes(16, &tensor), TP_OK);
    uint64_t extent = 0;
    EXPECT(tp_tensor_validate(&tensor, &extent), TP_OK);
    CHECK(extent == 16);
    tensor.dtype = 99;
    EXPECT(tp_tensor_validate(&tensor, NULL), TP_ERROR_INVALID_TENSOR);
    tensor.dtype = TP_DTYPE_UINT8;
    tensor.ndims = 9;
    EXPECT(tp_tensor_validate(&tensor, NULL), TP_ERROR_INVALID_TENSOR);

    CHECK(strcmp(tp_status_name(TP_ERROR_NOT_ATTACHED), "TP_ERROR_NOT_ATTACHED") == 0);
    CHECK(strcmp(tp_status_name(42), "TP_UNKNOWN_STATUS") == 0);
    CHECK(strcmp(tp_producer_event_name(TP_PRODUCER_EVENT_LEASE_LOST),
                 "TP_PRODUCER_EVENT_LEASE_LOST") == 0);
    CHECK(strcmp(tp_producer_event_name(99), "TP_UNKNOWN_EVENT") == 0);
    CHECK(strcmp(tp_consumer_event_name(TP_CONSUMER_EVENT_PRODUCER_REVOKED),
                 "TP_CONSUMER_EVENT_PRODUCER_REVOKED") == 0);
    CHECK(strcmp(tp_consumer_event_name(-1), "TP_UNKNOWN_EVENT") == 0);
    CHECK(strcmp(tp_consumer_event_reason_name(TP_CONSUMER_EVENT_ATTACH_REFUSED, 2),
                 "INVALID_PARAMS") == 0);
    CHECK(strcmp(tp_consumer_event_reason_name(TP_CONSUMER_EVENT_PRODUCER_REVOKED, 1),
                 "DETACHED") == 0);
    CHECK(strcmp(tp_consumer_event_reason_name(TP_CONSUMER_EVENT_DRIVER_SHUTDOWN, 1), "ADMIN") == 0);
    CHECK(strcmp(tp_consumer_event_reason_name(TP_CONSUMER_EVENT_UNMAPPED,
                                               TP_UNMAP_EPOCH_WAIT_TIMED_OUT),
                 "TP_UNMAP_EPOCH_WAIT_TIMED_OUT") == 0);
    CHECK(strcmp(tp_consumer_event_reason_name(TP_CONSUMER_EVENT_ATTACHED, 0), "") == 0);
    CHECK(strcmp(tp_producer_event_reason_name(TP_PRODUCER_EVENT_REVOKED, 2), "EXPIRED") == 0);
    CHECK(strcmp(tp_producer_event_reason_name(TP_PRODUCER_EVENT_REVOKED, 9), "UNRECOGNIZED") == 0);
    CHECK(strcmp(tp_producer_event_reason_name(TP_PRODUCER_EVENT_ATTACH_REFUSED, 3), "REJECTED") == 0);
    const char *fix = tp_attach_refusal_fix(3, "stream not provisioned");
    CHECK(fix != NULL && strstr(fix, "[streams.") != NULL);
    CHECK(tp_attach_refusal_fix(3, "producer already attached") == NULL);
    CHECK(tp_attach_refusal_fix(3, NULL) == NULL);
    tp_version_info version;
    EXPECT(tp_version(NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_version(&version), TP_OK);
    CHECK(version.abi_version == TP_ABI_VERSION);
    CHECK(version.driver_schema_id == 901 && version.control_schema_id == 900);
    CHECK(strlen(tp_version_string()) > 0);
    EXPECT(tp_log_init("no such level=="), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_log_init("warn"), TP_OK);
    EXPECT(tp_log_init("warn"), TP_ERROR_WRONG_STATE);
}

/* Duty cycles of both until `done` says so or 10 s pass. */
static bool pump(tp_producer *producer, tp_consumer *consumer,
                 bool (*done)(tp_producer *, tp_consumer *)) {
    double deadline = example_now_s() + 10.0;
    while (example_now_s() < deadline) {
        tp_producer_do_work(producer, NULL);
        tp_consumer_do_work(consumer, NULL);
        tp_producer_event pe;
        while (tp_producer_poll_event(producer, &pe) == TP_OK &&
               pe.kind != TP_PRODUCER_EVENT_NONE) {
        }
        tp_consumer_event ce;
        while (tp_consumer_poll_event(consumer, &ce) == TP_OK &&
               ce.kind != TP_CONSUMER_EVENT_NONE) {
        }
        if (done(producer, consumer)) {
            return true;
        }
        example_sleep_ns(1000000L);
    }
    return false;
}

static bool both_ready(tp_producer *producer, tp_consumer *consumer) {
    tp_producer_info pi;
    tp_consumer_info ci;
    return tp_producer_get_info(producer, &pi) == TP_OK && pi.attached &&
           tp_consumer_get_info(consumer, &ci) == TP_OK && ci.ready &&
           ci.mapped_epoch == pi.epoch;
}

static void client_checks(const example_client_options *o) {
    tp_config *config = example_config("misuse", o);
    CHECK(config != NULL);
    if (config == NULL) {
        return;
    }
    tp_producer *producer = NULL;
    tp_consumer *consumer = NULL;
    EXPECT(tp_producer_create(config, o->stream_id, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_producer_create(NULL, o->stream_id, &producer), TP_ERROR_NULL_POINTER);
    EXPECT(tp_consumer_create(config, o->stream_id, &consumer), TP_OK);
    EXPECT(tp_producer_create(config, o->stream_id, &producer), TP_OK);
    if (producer == NULL || consumer == NULL) {
        tp_config_close(config);
        return;
    }

    /* Wrong kind of handle, wrong thread, wrong order. */
    EXPECT(tp_producer_do_work((tp_producer *)consumer, NULL), TP_ERROR_INVALID_HANDLE);
    EXPECT(tp_consumer_do_work((tp_consumer *)config, NULL), TP_ERROR_INVALID_HANDLE);
    EXPECT(tp_producer_do_work(NULL, NULL), TP_ERROR_NULL_POINTER);
    pthread_t thread;
    void *result = NULL;
    CHECK(pthread_create(&thread, NULL, other_thread, producer) == 0);
    CHECK(pthread_join(thread, &result) == 0);
    CHECK(result != NULL && *(tp_status *)result == TP_ERROR_WRONG_THREAD);
    EXPECT(tp_producer_commit(producer, NULL, 0, NULL), TP_ERROR_NULL_POINTER);
    tp_tensor tensor;
    EXPECT(tp_tensor_bytes(64, &tensor), TP_OK);
    EXPECT(tp_producer_commit(producer, &tensor, 0, NULL), TP_ERROR_WRONG_STATE);
    EXPECT(tp_producer_abort(producer), TP_ERROR_WRONG_STATE);
    tp_claim claim;
    tp_status early = tp_producer_claim(producer, 64, &claim);
    CHECK(early == TP_ERROR_NOT_ATTACHED || early == TP_OK);
    if (early == TP_OK) {
        tp_producer_abort(producer);
    }

    CHECK(pump(producer, consumer, both_ready));
    EXPECT(tp_producer_claim(producer, (size_t)1 << 30, &claim), TP_ERROR_FRAME_TOO_LARGE);
    EXPECT(tp_producer_publish(producer, NULL, 10, &tensor, 0, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_producer_claim(producer, 64, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_producer_claim(producer, 64, &claim), TP_OK);
    EXPECT(tp_producer_claim(producer, 64, &claim), TP_ERROR_WRONG_STATE);
    EXPECT(tp_producer_do_work(producer, NULL), TP_ERROR_WRONG_STATE);
    tp_producer_info info;
    EXPECT(tp_producer_get_info(producer, &info), TP_ERROR_WRONG_STATE);
    tp_tensor bad = tensor;
    bad.dtype = 99;
    EXPECT(tp_producer_commit(producer, &bad, 0, NULL), TP_ERROR_INVALID_TENSOR);
    EXPECT(tp_producer_commit(producer, &tensor, 0, NULL), TP_ERROR_WRONG_STATE);

    /* A good frame; the consumer sees it. */
    uint8_t payload[64];
    memset(payload, 7, sizeof payload);
    uint64_t seq = 0;
    EXPECT(tp_producer_publish(producer, payload, sizeof payload, &tensor,
                               tp_monotonic_now_ns(), &seq),
           TP_OK);
    callback_state state;
    memset(&state, 0, sizeof state);
    state.consumer = consumer;
    tp_poll_result poll;
    memset(&poll, 0, sizeof poll);
    EXPECT(tp_consumer_poll(consumer, NULL, &state, &poll), TP_ERROR_NULL_POINTER);
    double deadline = example_now_s() + 10.0;
    while (poll.outcome != TP_POLL_DELIVERED && example_now_s() < deadline) {
        tp_consumer_do_work(consumer, NULL);
        EXPECT(tp_consumer_poll(consumer, on_frame, &state, &poll), TP_OK);
    }
    CHECK(poll.outcome == TP_POLL_DELIVERED && poll.seq == seq);
    CHECK(state.calls == 1);
    CHECK(state.get == TP_OK);
    CHECK(state.reentry == TP_ERROR_WRONG_STATE);
    tp_frame_info view;
    EXPECT(tp_frame_get(state.kept, &view), TP_ERROR_VIEW_EXPIRED);
    EXPECT(tp_frame_get((const tp_frame *)producer, &view), TP_ERROR_INVALID_HANDLE);
    tp_consumer_counters counters;
    EXPECT(tp_consumer_get_counters(consumer, &counters), TP_OK);
    CHECK(counters.frames_delivered == 1);
    tp_consumer_info cinfo;
    EXPECT(tp_consumer_get_info(consumer, &cinfo), TP_OK);
    CHECK(cinfo.ready && cinfo.last_seq_seen == seq);

    /* Three frames read in one batch, outcomes in order. */
    uint64_t first = 0;
    EXPECT(tp_producer_publish(producer, payload, sizeof payload, &tensor, 0, &first), TP_OK);
    EXPECT(tp_producer_publish(producer, payload, sizeof payload, &tensor, 0, NULL), TP_OK);
    EXPECT(tp_producer_publish(producer, payload, sizeof payload, &tensor, 0, NULL), TP_OK);
    batch_state batch;
    memset(&batch, 0, sizeof batch);
    EXPECT(tp_consumer_poll_frames(consumer, 16, NULL, NULL, &batch, NULL),
           TP_ERROR_NULL_POINTER);
    deadline = example_now_s() + 10.0;
    while (batch.delivered < 3 && example_now_s() < deadline) {
        size_t messages = 0;
        tp_consumer_do_work(consumer, NULL);
        EXPECT(tp_consumer_poll_frames(consumer, 16, on_batch_frame, on_batch_outcome, &batch,
                                       &messages),
               TP_OK);
    }
    CHECK(batch.delivered == 3 && batch.frames == 3);
    CHECK(batch.seqs[0] == first && batch.seqs[1] == first + 1 && batch.seqs[2] == first + 2);

    /* Metadata: bad arguments change nothing; a good set reaches the consumer and tags
     * later frames. */
    tp_metadata_info meta;
    EXPECT(tp_consumer_get_metadata(consumer, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_consumer_get_metadata(consumer, &meta), TP_OK);
    CHECK(meta.meta_version == 0 && meta.name == NULL && meta.attribute_count == 0);
    tp_attribute view_attr;
    EXPECT(tp_consumer_get_metadata_attribute(consumer, 0, &view_attr), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_producer_set_metadata(producer, "cam", NULL, NULL, 1, NULL), TP_ERROR_NULL_POINTER);
    char long_name[300];
    memset(long_name, 'x', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    EXPECT(tp_producer_set_metadata(producer, long_name, NULL, NULL, 0, NULL),
           TP_ERROR_INVALID_ARGUMENT);
    CHECK(strstr(tp_last_error_message(), "name") != NULL);
    tp_attribute attrs[2] = {
        {"serial", 6, "text/plain", 10, (const uint8_t *)"SN1", 3},
        {"serial", 6, "text/plain", 10, NULL, 0},
    };
    EXPECT(tp_producer_set_metadata(producer, "cam", NULL, attrs, 2, NULL),
           TP_ERROR_INVALID_ARGUMENT);
    attrs[1].key = "bad\x01";
    attrs[1].key_len = 4;
    EXPECT(tp_producer_set_metadata(producer, "cam", NULL, attrs, 2, NULL),
           TP_ERROR_INVALID_ARGUMENT);
    attrs[1].key = "empty";
    attrs[1].key_len = 5;
    attrs[1].value_len = 4;
    EXPECT(tp_producer_set_metadata(producer, "cam", NULL, attrs, 2, NULL), TP_ERROR_NULL_POINTER);
    uint32_t version = 99;
    EXPECT(tp_producer_get_meta_version(producer, &version), TP_OK);
    CHECK(version == 0);
    EXPECT(tp_producer_set_metadata(producer, "cam", "u8 x64", attrs, 1, &version), TP_OK);
    CHECK(version == 1);
    bool changed = false;
    deadline = example_now_s() + 10.0;
    while (!changed && example_now_s() < deadline) {
        tp_producer_do_work(producer, NULL);
        tp_consumer_do_work(consumer, NULL);
        tp_consumer_event ce;
        while (tp_consumer_poll_event(consumer, &ce) == TP_OK && ce.kind != TP_CONSUMER_EVENT_NONE) {
            changed |= ce.kind == TP_CONSUMER_EVENT_METADATA_CHANGED && ce.meta_version == 1;
        }
    }
    CHECK(changed);
    EXPECT(tp_consumer_get_metadata(consumer, &meta), TP_OK);
    CHECK(meta.meta_version == 1 && meta.name_len == 3 && memcmp(meta.name, "cam", 3) == 0);
    CHECK(meta.summary_len == 6 && memcmp(meta.summary, "u8 x64", 6) == 0);
    CHECK(meta.attribute_count == 1);
    EXPECT(tp_consumer_get_metadata_attribute(consumer, 0, &view_attr), TP_OK);
    CHECK(view_attr.key_len == 6 && memcmp(view_attr.key, "serial", 6) == 0);
    CHECK(view_attr.value_len == 3 && memcmp(view_attr.value, "SN1", 3) == 0);
    EXPECT(tp_consumer_get_metadata_attribute(consumer, 1, &view_attr), TP_ERROR_INVALID_ARGUMENT);
    EXPECT(tp_producer_publish(producer, payload, sizeof payload, &tensor, 0, NULL), TP_OK);
    meta_seen tagged;
    memset(&tagged, 0, sizeof tagged);
    memset(&poll, 0, sizeof poll);
    deadline = example_now_s() + 10.0;
    while (poll.outcome != TP_POLL_DELIVERED && example_now_s() < deadline) {
        EXPECT(tp_consumer_poll(consumer, on_meta_frame, &tagged, &poll), TP_OK);
    }
    CHECK(tagged.meta_version == 1 && tagged.meta_status == TP_META_CURRENT);
    EXPECT(tp_consumer_get_counters(consumer, &counters), TP_OK);
    CHECK(counters.metadata_updates == 1 && counters.metadata_dropped_malformed == 0);

    /* Closed handles. */
    EXPECT(tp_consumer_close(consumer), TP_OK);
    EXPECT(tp_consumer_do_work(consumer, NULL), TP_ERROR_CLOSED_HANDLE);
    EXPECT(tp_consumer_close(consumer), TP_ERROR_CLOSED_HANDLE);
    EXPECT(tp_frame_get(state.kept, &view), TP_ERROR_VIEW_EXPIRED);
    EXPECT(tp_producer_close(producer), TP_OK);
    EXPECT(tp_producer_claim(producer, 64, &claim), TP_ERROR_CLOSED_HANDLE);
    EXPECT(tp_producer_close(NULL), TP_OK);
    EXPECT(tp_config_close(config), TP_OK);
}

int main(int argc, char **argv) {
    example_client_options o;
    example_client_defaults(&o);
    for (int i = 1; i < argc; i++) {
        if (!example_client_option("misuse", "--client-id", &o, argc, argv, &i)) {
            fprintf(stderr, "misuse: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    config_checks();
    if (o.aeron_dir != NULL) {
        client_checks(&o);
    }
    printf("misuse: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
