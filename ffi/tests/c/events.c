/*
 * Lifecycle events through the C event API, in one thread: a producer and a consumer
 * of one stream move frames; closing the producer makes the consumer see the producer's
 * lease revoked; a new producer feeds it again; then the test stops tp-driver (SIGTERM)
 * and starts it again, and both clients must report the shutdown and come back
 * (producer REATTACHED, consumer frames flowing). Every event and step is printed as a
 * JSON line; the harness (ffi/tests/c_events.rs) acts on "step" lines. Exits 0 after the
 * last step, 1 on a failure or when a step takes longer than 30 s.
 */
#include "example_common.h"

static const char *producer_event_name(int32_t kind) {
    switch (kind) {
    case TP_PRODUCER_EVENT_ATTACHED: return "attached";
    case TP_PRODUCER_EVENT_REATTACHED: return "reattached";
    case TP_PRODUCER_EVENT_REVOKED: return "revoked";
    case TP_PRODUCER_EVENT_LEASE_LOST: return "lease_lost";
    case TP_PRODUCER_EVENT_DRIVER_SHUTDOWN: return "driver_shutdown";
    case TP_PRODUCER_EVENT_ATTACH_REFUSED: return "attach_refused";
    case TP_PRODUCER_EVENT_MAP_FAILED: return "map_failed";
    case TP_PRODUCER_EVENT_MEDIA_DRIVER_LOST: return "media_driver_lost";
    default: return "unknown";
    }
}

static const char *consumer_event_name(int32_t kind) {
    switch (kind) {
    case TP_CONSUMER_EVENT_ATTACHED: return "attached";
    case TP_CONSUMER_EVENT_EPOCH_CHANGED: return "epoch_changed";
    case TP_CONSUMER_EVENT_REVOKED: return "revoked";
    case TP_CONSUMER_EVENT_PRODUCER_REVOKED: return "producer_revoked";
    case TP_CONSUMER_EVENT_DRIVER_SHUTDOWN: return "driver_shutdown";
    case TP_CONSUMER_EVENT_UNMAPPED: return "unmapped";
    case TP_CONSUMER_EVENT_MEDIA_DRIVER_LOST: return "media_driver_lost";
    default: return "unknown";
    }
}

typedef struct world {
    const example_client_options *options;
    tp_config *config;
    tp_producer *producer; /* NULL while closed */
    tp_consumer *consumer;
    uint64_t delivered;
    uint32_t seen_producer; /* bit per producer event kind */
    uint32_t seen_consumer; /* bit per consumer event kind */
} world;

static void on_frame(const tp_frame *frame, void *user) {
    (void)frame;
    (void)user;
}

static void step(const char *name) {
    printf("{\"step\":\"%s\"}\n", name);
    fflush(stdout);
}

static bool fail(const char *what, tp_status status) {
    printf("{\"step\":\"failed\",\"what\":\"%s\",\"status\":\"%s\"}\n", what, tp_status_name(status));
    fprintf(stderr, "events: %s: %s\n", what, tp_last_error_message());
    fflush(stdout);
    return false;
}

/* One duty cycle of both clients: events printed and recorded, one frame published when
 * attached, frames read. */
static bool cycle(world *w) {
    tp_status status;
    if (w->producer != NULL) {
        if ((status = tp_producer_do_work(w->producer, NULL)) != TP_OK) {
            return fail("producer do_work", status);
        }
        tp_producer_event e;
        while ((status = tp_producer_poll_event(w->producer, &e)) == TP_OK &&
               e.kind != TP_PRODUCER_EVENT_NONE) {
            w->seen_producer |= 1u << e.kind;
            printf("{\"who\":\"producer\",\"event\":\"%s\",\"reason\":%d,\"epoch\":%llu}\n",
                   producer_event_name(e.kind), (int)e.reason, (unsigned long long)e.epoch);
        }
        tp_tensor tensor;
        uint8_t payload[64];
        memset(payload, 1, sizeof payload);
        tp_tensor_bytes(sizeof payload, &tensor);
        status = tp_producer_publish(w->producer, payload, sizeof payload, &tensor,
                                     tp_monotonic_now_ns(), NULL);
        if (status != TP_OK && status != TP_ERROR_NOT_ATTACHED) {
            return fail("publish", status);
        }
    }
    if ((status = tp_consumer_do_work(w->consumer, NULL)) != TP_OK) {
        return fail("consumer do_work", status);
    }
    tp_consumer_event e;
    while ((status = tp_consumer_poll_event(w->consumer, &e)) == TP_OK &&
           e.kind != TP_CONSUMER_EVENT_NONE) {
        w->seen_consumer |= 1u << e.kind;
        printf("{\"who\":\"consumer\",\"event\":\"%s\",\"reason\":%d,\"epoch\":%llu}\n",
               consumer_event_name(e.kind), (int)e.reason, (unsigned long long)e.epoch);
    }
    fflush(stdout);
    for (int k = 0; k < 16; k++) {
        tp_poll_result result;
        if ((status = tp_consumer_poll(w->consumer, on_frame, NULL, &result)) != TP_OK) {
            return fail("poll", status);
        }
        if (result.outcome == TP_POLL_EMPTY) {
            break;
        }
        if (result.outcome == TP_POLL_DELIVERED) {
            w->delivered++;
        }
    }
    example_sleep_ns(1000000L);
    return true;
}

/* Cycles until `done` holds (true) or 30 s pass (false). */
static bool until(world *w, const char *what, bool (*done)(const world *, uint64_t),
                  uint64_t mark) {
    double deadline = example_now_s() + 30.0;
    while (example_now_s() < deadline) {
        if (!cycle(w)) {
            return false;
        }
        if (done(w, mark)) {
            return true;
        }
    }
    return fail(what, TP_OK);
}

static bool frames_since(const world *w, uint64_t mark) { return w->delivered >= mark + 5; }

static bool producer_revoked_seen(const world *w, uint64_t mark) {
    (void)mark;
    return (w->seen_consumer & (1u << TP_CONSUMER_EVENT_PRODUCER_REVOKED)) != 0;
}

static bool shutdown_seen_by_both(const world *w, uint64_t mark) {
    (void)mark;
    return (w->seen_consumer & (1u << TP_CONSUMER_EVENT_DRIVER_SHUTDOWN)) != 0 &&
           (w->seen_producer & (1u << TP_PRODUCER_EVENT_DRIVER_SHUTDOWN)) != 0;
}

static bool back_after_restart(const world *w, uint64_t mark) {
    return (w->seen_producer & (1u << TP_PRODUCER_EVENT_REATTACHED)) != 0 &&
           w->delivered >= mark + 5;
}

static bool create_producer(world *w) {
    tp_status status = tp_producer_create(w->config, w->options->stream_id, &w->producer);
    return status == TP_OK || fail("tp_producer_create", status);
}

static bool run(world *w) {
    tp_status status = tp_consumer_create(w->config, w->options->stream_id, &w->consumer);
    if (status != TP_OK) {
        return fail("tp_consumer_create", status);
    }
    if (!create_producer(w) || !until(w, "frames flowing", frames_since, 0)) {
        return false;
    }
    step("flowing");
    tp_producer_close(w->producer);
    w->producer = NULL;
    step("producer_closed");
    if (!until(w, "producer revoke seen by the consumer", producer_revoked_seen, 0)) {
        return false;
    }
    if (!create_producer(w) || !until(w, "frames from the new producer", frames_since, w->delivered)) {
        return false;
    }
    w->seen_producer = 0;
    step("ready_for_restart");
    if (!until(w, "driver shutdown seen by both", shutdown_seen_by_both, 0)) {
        return false;
    }
    step("driver_gone");
    if (!until(w, "both back after the restart", back_after_restart, w->delivered)) {
        return false;
    }
    step("done");
    return true;
}

int main(int argc, char **argv) {
    example_client_options o;
    example_client_defaults(&o);
    for (int i = 1; i < argc; i++) {
        if (!example_client_option("events", "--client-id", &o, argc, argv, &i)) {
            fprintf(stderr, "events: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    world w;
    memset(&w, 0, sizeof w);
    w.options = &o;
    w.config = example_config("events", &o);
    bool ok = w.config != NULL && run(&w);
    tp_producer_close(w.producer);
    tp_consumer_close(w.consumer);
    tp_config_close(w.config);
    return ok ? 0 : 1;
}
