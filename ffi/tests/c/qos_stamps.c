/*
 * QoS, frame stamps and the consumer state through the C ABI, against a running
 * tp-driver (the examples' client flags): a frame's trace id and publish time set with
 * tp_producer_set_frame_stamp reach tp_frame_info (0 = absent, and only for the next
 * frame); the producer sees its consumer's QoS and lag with tp_producer_get_consumer_qos;
 * a tp_qos_monitor, holding no lease, hears the producer and the consumer; the consumer
 * reports MAPPED and refuses a fallback URI outside FALLBACK. Prints one line per failed
 * check and exits 0 only if every check held.
 */
#include "example_common.h"

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

typedef struct clients {
    tp_producer *producer;
    tp_consumer *consumer;
    tp_qos_monitor *monitor;
    /* What the monitor heard. */
    int producer_reports;
    int consumer_reports;
    uint32_t consumer_id;
    /* The frames read, in order. */
    int frames;
    tp_frame_info seen[4];
} clients;

static void on_report(const tp_qos_report *report, void *user) {
    clients *c = (clients *)user;
    if (report->kind == TP_QOS_PRODUCER) {
        c->producer_reports++;
    } else if (report->kind == TP_QOS_CONSUMER && report->client_id == c->consumer_id) {
        c->consumer_reports++;
    }
}

static void on_frame(const tp_frame *frame, void *user) {
    clients *c = (clients *)user;
    if (c->frames < 4 && tp_frame_get(frame, &c->seen[c->frames]) == TP_OK) {
        c->frames++;
    }
}

/* Every duty cycle until `done` says so or 10 s pass. */
static bool pump(clients *c, bool (*done)(clients *)) {
    double deadline = example_now_s() + 10.0;
    while (example_now_s() < deadline) {
        tp_producer_do_work(c->producer, NULL);
        tp_consumer_do_work(c->consumer, NULL);
        tp_qos_monitor_poll(c->monitor, on_report, c, NULL);
        tp_producer_event pe;
        while (tp_producer_poll_event(c->producer, &pe) == TP_OK &&
               pe.kind != TP_PRODUCER_EVENT_NONE) {
        }
        tp_consumer_event ce;
        while (tp_consumer_poll_event(c->consumer, &ce) == TP_OK &&
               ce.kind != TP_CONSUMER_EVENT_NONE) {
        }
        tp_poll_result result;
        tp_consumer_poll(c->consumer, on_frame, c, &result);
        if (done(c)) {
            return true;
        }
        example_sleep_ns(1000000L);
    }
    return false;
}

static bool ready(clients *c) {
    tp_producer_info pi;
    tp_consumer_info ci;
    return tp_producer_get_info(c->producer, &pi) == TP_OK && pi.attached &&
           tp_consumer_get_info(c->consumer, &ci) == TP_OK && ci.ready &&
           ci.mapped_epoch == pi.epoch;
}

static bool three_frames(clients *c) { return c->frames >= 3; }

static bool qos_heard(clients *c) {
    tp_consumer_qos row;
    size_t count = 0;
    return tp_producer_get_consumer_qos(c->producer, &row, 1, &count) == TP_OK && count == 1 &&
           row.consumer_id == c->consumer_id && row.lag == 0 && c->producer_reports > 0 &&
           c->consumer_reports > 0;
}

int main(int argc, char **argv) {
    example_client_options o;
    example_client_defaults(&o);
    for (int i = 1; i < argc; i++) {
        if (!example_client_option("qos_stamps", "--client-id", &o, argc, argv, &i)) {
            fprintf(stderr, "qos_stamps: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    tp_config *config = example_config("qos_stamps", &o);
    if (config == NULL) {
        return 1;
    }
    clients c;
    memset(&c, 0, sizeof c);
    EXPECT(tp_qos_monitor_create(config, NULL), TP_ERROR_NULL_POINTER);
    EXPECT(tp_qos_monitor_create(config, &c.monitor), TP_OK);
    EXPECT(tp_consumer_create(config, o.stream_id, &c.consumer), TP_OK);
    EXPECT(tp_producer_create(config, o.stream_id, &c.producer), TP_OK);
    if (c.monitor == NULL || c.consumer == NULL || c.producer == NULL) {
        printf("qos_stamps: %d checks, %d failed\n", checks, failures + 1);
        return 1;
    }
    EXPECT(tp_qos_monitor_poll((tp_qos_monitor *)c.consumer, NULL, NULL, NULL),
           TP_ERROR_INVALID_HANDLE);
    tp_consumer_info ci;
    CHECK(tp_consumer_get_info(c.consumer, &ci) == TP_OK);
    c.consumer_id = ci.consumer_id;
    CHECK(pump(&c, ready));
    int state = -1;
    EXPECT(tp_consumer_get_state(c.consumer, &state), TP_OK);
    CHECK(state == TP_CONSUMER_STATE_MAPPED);
    EXPECT(tp_consumer_get_state(c.consumer, NULL), TP_ERROR_NULL_POINTER);
    size_t len = 0;
    char uri[64];
    EXPECT(tp_consumer_get_fallback_uri(c.consumer, uri, sizeof uri, &len), TP_ERROR_WRONG_STATE);
    EXPECT(tp_consumer_get_fallback_uri(c.consumer, NULL, 8, &len), TP_ERROR_NULL_POINTER);

    /* Stamped frames on both paths (a claim may be stamped once filled), then an
     * unstamped one: a stamp is for one frame only. */
    tp_tensor tensor;
    EXPECT(tp_tensor_bytes(16, &tensor), TP_OK);
    uint8_t payload[16] = {0};
    EXPECT(tp_producer_set_frame_stamp(c.producer, 0xABCDEF0123ull, 4242), TP_OK);
    EXPECT(tp_producer_publish(c.producer, payload, sizeof payload, &tensor, 111, NULL), TP_OK);
    tp_claim claim;
    EXPECT(tp_producer_claim(c.producer, 16, &claim), TP_OK);
    memset(claim.data, 1, claim.len);
    EXPECT(tp_producer_set_frame_stamp(c.producer, 7, 0), TP_OK);
    EXPECT(tp_producer_commit(c.producer, &tensor, 222, NULL), TP_OK);
    EXPECT(tp_producer_publish(c.producer, payload, sizeof payload, &tensor, 333, NULL), TP_OK);
    EXPECT(tp_producer_set_frame_stamp(NULL, 1, 1), TP_ERROR_NULL_POINTER);
    CHECK(pump(&c, three_frames));
    CHECK(c.seen[0].trace_id == 0xABCDEF0123ull && c.seen[0].descriptor_timestamp_ns == 4242 &&
          c.seen[0].timestamp_ns == 111);
    CHECK(c.seen[1].trace_id == 7 && c.seen[1].descriptor_timestamp_ns == 0 &&
          c.seen[1].timestamp_ns == 222);
    CHECK(c.seen[2].trace_id == 0 && c.seen[2].descriptor_timestamp_ns == 0 &&
          c.seen[2].timestamp_ns == 333);

    /* QoS: the producer's view of its consumer, and the monitor's. */
    CHECK(pump(&c, qos_heard));
    size_t count = 99;
    EXPECT(tp_producer_get_consumer_qos(c.producer, NULL, 0, &count), TP_OK);
    CHECK(count == 1);
    EXPECT(tp_producer_get_consumer_qos(c.producer, NULL, 1, &count), TP_ERROR_NULL_POINTER);
    EXPECT(tp_producer_get_consumer_qos(c.producer, NULL, 0, NULL), TP_ERROR_NULL_POINTER);
    tp_consumer_qos row;
    EXPECT(tp_producer_get_consumer_qos(c.producer, &row, 1, &count), TP_OK);
    CHECK(row.last_seq_seen == 2 && row.drops_gap == 0 && row.drops_late == 0 && row.mode == 1);

    EXPECT(tp_qos_monitor_close(c.monitor), TP_OK);
    EXPECT(tp_qos_monitor_poll(c.monitor, NULL, NULL, NULL), TP_ERROR_CLOSED_HANDLE);
    EXPECT(tp_producer_close(c.producer), TP_OK);
    EXPECT(tp_consumer_close(c.consumer), TP_OK);
    EXPECT(tp_config_close(config), TP_OK);
    printf("qos_stamps: %d checks, %d failed\n", checks, failures);
    return failures == 0 ? 0 : 1;
}
