/*
 * Reads frames from a tensorpool stream through a running tp-driver: the C counterpart
 * of examples/consumer.rs, with the same flags and JSON line.
 *
 *   consumer --stream-id 10000 --frames 10000 --timeout-s 60 --verify
 *
 * Without --aeron-dir it uses Aeron's default directory (AERON_DIR, else
 * /dev/shm/aeron-<user>), where a driver without driver.aeron_dir runs. It connects and
 * attaches (retrying until --timeout-s), then reads frames until --frames were
 * delivered, the timeout passes, or the producer finished (it detached and no frame came
 * within two announce periods after). With --verify each frame must be a
 * one-dimensional UINT8 tensor with dims[0] = the payload length whose byte i is
 * (s + i) mod 251 for sequence s (one memcmp). At the end it prints one JSON line:
 *
 *   {"role":"consumer","frames_received":N,"frames_verified":N,"verify_failures":N,
 *    "drops_gap":N,"drops_late":N,"drops_resync":N,"drops_invalid":N,"drops_other":N,
 *    "epoch_changes":N,"trace_ids_verified":N,"trace_failures":N,"interrupted":false,
 *    "elapsed_s":F,"frames_per_s":F,"mib_per_s":F}
 *
 * With --expect-trace-id BASE each frame's descriptor must carry trace id BASE + s (what
 * the producers' --trace-id BASE sends); a frame that does not is a trace failure.
 *
 * followed (in the same object) by the stream's metadata as last received:
 * "meta_version" (0: none), "meta_name", "meta_summary", "meta_attrs" ("key=value"
 * pairs joined by ';'), "meta_changes", and the versions frames carried:
 * "first_frame_meta_version", "last_frame_meta_version", "frames_meta_unseen" (frames
 * naming a version not received yet, delivered all the same) and
 * "frame_meta_regressions" (a frame with a lower version than the one before it).
 *
 * elapsed_s runs from the first delivered frame to the last. Exit status: 0 when
 * --frames frames were received (and verified), 130 after SIGINT/SIGTERM, 1 otherwise.
 */
#include "example_metadata.h"

#define ROLE "consumer"
#define FRAMES_PER_CYCLE 64
/* Largest payload --verify checks (the pattern table's size). */
#define MAX_VERIFIED_LEN (16u * 1024u * 1024u)

typedef struct options {
    example_client_options client;
    uint64_t frames;
    double timeout_s;
    bool verify;
    const char *per_consumer_channel;
    uint32_t per_consumer_stream_id;
    uint64_t announce_period_ms;
    uint64_t expect_trace_id; /* 0: trace ids are not checked */
} options;

typedef struct report {
    uint64_t frames_received;
    uint64_t frames_verified;
    uint64_t verify_failures;
    uint64_t trace_ids_verified;
    uint64_t trace_failures;
    uint64_t bytes_received;
    double first_frame;
    double last_frame;
    tp_consumer_counters counters;
    example_meta_copy meta;
    bool any_frame_meta;
    uint32_t first_frame_meta_version;
    uint32_t last_frame_meta_version;
    uint64_t frames_meta_unseen;
    uint64_t frame_meta_regressions;
} report;

/* What the frame callback saw; counted only once the poll says DELIVERED. */
typedef struct seen {
    const uint8_t *table;
    bool verify;
    size_t len;
    bool matches;
    uint64_t expect_trace_id;
    bool trace_matches;
    uint32_t meta_version;
    int32_t meta_status;
} seen;

static void usage(void) {
    fprintf(stderr,
            "usage: consumer [--aeron-dir DIR (default: AERON_DIR, else /dev/shm/aeron-<user>)]\n"
            "  [--stream-id 10000] [--frames 1000]\n"
            "  [--timeout-s 30] [--verify] [--channel aeron:ipc?term-length=4m]\n"
            "  [--control-stream-id 1000] [--announce-stream-id 1001]\n"
            "  [--descriptor-stream-id 1100] [--qos-stream-id 1200]\n"
            "  [--allowed-base-dir /dev/shm/tensorpool]... [--consumer-id 0]\n"
            "  [--per-consumer-descriptor CHANNEL:STREAM_ID] [--announce-period-ms 1000]\n"
            "  [--keepalive-ms BOUND] [--expect-trace-id BASE (frame s must carry BASE + s)]\n");
}

static void parse(int argc, char **argv, options *o) {
    example_client_defaults(&o->client);
    o->frames = 1000;
    o->timeout_s = 30.0;
    o->verify = false;
    o->expect_trace_id = 0;
    o->per_consumer_channel = NULL;
    o->per_consumer_stream_id = 0;
    o->announce_period_ms = 1000;
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (example_client_option(ROLE, "--consumer-id", &o->client, argc, argv, &i)) {
            continue;
        }
        if (strcmp(flag, "--verify") == 0) {
            o->verify = true;
            continue;
        }
        if (strcmp(flag, "--help") == 0) {
            usage();
            exit(0);
        }
        if (i + 1 >= argc) {
            fprintf(stderr, ROLE ": unknown option or missing value: %s\n", flag);
            usage();
            exit(2);
        }
        char *value = argv[++i];
        if (strcmp(flag, "--frames") == 0) {
            o->frames = example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--expect-trace-id") == 0) {
            o->expect_trace_id = example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--timeout-s") == 0) {
            o->timeout_s = example_parse_f64(ROLE, flag, value);
        } else if (strcmp(flag, "--announce-period-ms") == 0) {
            o->announce_period_ms = example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--per-consumer-descriptor") == 0) {
            /* CHANNEL:STREAM_ID, split at the last colon (channels contain colons). */
            char *colon = strrchr(value, ':');
            if (colon == NULL || colon == value) {
                fprintf(stderr, ROLE ": %s is not CHANNEL:STREAM_ID\n", value);
                exit(2);
            }
            *colon = '\0';
            o->per_consumer_channel = value;
            o->per_consumer_stream_id = example_parse_u32(ROLE, flag, colon + 1);
        } else {
            fprintf(stderr, ROLE ": unknown option %s\n", flag);
            usage();
            exit(2);
        }
    }
}

static void on_frame(const tp_frame *frame, void *user) {
    seen *s = (seen *)user;
    tp_frame_info info;
    s->len = 0;
    s->matches = false;
    if (tp_frame_get(frame, &info) != TP_OK) {
        return;
    }
    s->len = info.payload_len;
    /* The descriptor's trace id (0: none) travels beside the payload, not in it. */
    s->trace_matches = info.trace_id == s->expect_trace_id + info.seq;
    s->meta_version = info.meta_version;
    s->meta_status = info.meta_status;
    if (s->verify) {
        s->matches = info.tensor.dtype == TP_DTYPE_UINT8 && info.tensor.ndims == 1 &&
                     info.tensor.dims[0] >= 0 && (size_t)info.tensor.dims[0] == info.payload_len &&
                     info.payload_len <= MAX_VERIFIED_LEN &&
                     memcmp(info.payload, example_pattern(s->table, info.seq), info.payload_len) == 0;
    }
}

/* The response code of the driver's last attach refusal (NULL: none since attaching),
 * for the final message; the consumer retries refusals, as a producer may still create
 * the stream. */
static const char *last_refusal = NULL;

/* Drains the events (logging the unusual ones); false on a failure. Notes in
 * *producer_detached_at when the producer detached (it finished; 0: it has not). */
static bool drain_events(tp_consumer *consumer, double *producer_detached_at, report *r) {
    for (;;) {
        tp_consumer_event event;
        tp_status status = tp_consumer_poll_event(consumer, &event);
        if (status != TP_OK) {
            example_report(ROLE, "events", status);
            return false;
        }
        if (event.kind == TP_CONSUMER_EVENT_NONE) {
            return true;
        }
        const char *reason = tp_consumer_event_reason_name(event.kind, event.reason);
        if (event.kind == TP_CONSUMER_EVENT_METADATA_CHANGED) {
            r->meta.changes++;
            if (!example_copy_metadata(ROLE, consumer, &r->meta)) {
                return false;
            }
        } else if (event.kind == TP_CONSUMER_EVENT_ATTACH_REFUSED) {
            last_refusal = reason;
        } else if (event.kind == TP_CONSUMER_EVENT_ATTACHED) {
            last_refusal = NULL;
        } else if (event.kind == TP_CONSUMER_EVENT_PRODUCER_REVOKED &&
                   strcmp(reason, "DETACHED") == 0) {
            /* A producer that finishes detaches: normal, noted but not a warning. */
            if (*producer_detached_at == 0.0) {
                *producer_detached_at = example_now_s();
            }
        } else if (event.kind != TP_CONSUMER_EVENT_ATTACHED &&
                   event.kind != TP_CONSUMER_EVENT_EPOCH_CHANGED) {
            fprintf(stderr, ROLE ": %s (%s)\n", tp_consumer_event_name(event.kind), reason);
        }
    }
}

static bool read_frames(const options *o, tp_consumer *consumer, report *r, seen *s,
                        double deadline) {
    example_backoff idle;
    example_idle_reset(&idle);
    double grace_s = 2.0 * (double)(o->announce_period_ms == 0 ? 1 : o->announce_period_ms) / 1000.0;
    double producer_detached_at = 0.0;
    bool producer_finished = false;
    while (r->frames_received < o->frames && example_now_s() < deadline && !example_interrupted) {
        int work = 0;
        tp_status status = tp_consumer_do_work(consumer, &work);
        if (status != TP_OK) {
            example_report(ROLE, "duty cycle", status);
            return false;
        }
        if (!drain_events(consumer, &producer_detached_at, r)) {
            return false;
        }
        if (producer_detached_at != 0.0 && example_now_s() - producer_detached_at >= grace_s) {
            producer_finished = true;
            break;
        }
        for (int k = 0; k < FRAMES_PER_CYCLE && r->frames_received < o->frames; k++) {
            tp_poll_result result;
            status = tp_consumer_poll(consumer, on_frame, s, &result);
            if (status != TP_OK) {
                example_report(ROLE, "reading frames", status);
                return false;
            }
            if (result.outcome == TP_POLL_EMPTY) {
                break;
            }
            work++;
            if (result.outcome != TP_POLL_DELIVERED) {
                continue;
            }
            double now = example_now_s();
            if (r->frames_received == 0) {
                r->first_frame = now;
            }
            r->last_frame = now;
            r->frames_received++;
            producer_detached_at = 0.0; /* frames flow: a producer is there */
            r->bytes_received += s->len;
            if (o->expect_trace_id != 0) {
                if (s->trace_matches) {
                    r->trace_ids_verified++;
                } else {
                    r->trace_failures++;
                }
            }
            if (!r->any_frame_meta) {
                r->any_frame_meta = true;
                r->first_frame_meta_version = s->meta_version;
            } else if (s->meta_version < r->last_frame_meta_version) {
                r->frame_meta_regressions++;
            }
            r->last_frame_meta_version = s->meta_version;
            if (s->meta_status == TP_META_UNSEEN) {
                r->frames_meta_unseen++;
            }
            if (o->verify) {
                if (s->matches) {
                    r->frames_verified++;
                } else {
                    r->verify_failures++;
                }
            }
        }
        tp_consumer_get_counters(consumer, &r->counters);
        example_idle(&idle, work);
    }
    if (r->frames_received < o->frames && !example_interrupted) {
        if (producer_finished) {
            fprintf(stderr,
                    ROLE ": received %llu of %llu frames: the producer detached and no frame "
                         "came within %.1f s (the frames it sent and this consumer missed are in "
                         "the drops_* figures)\n",
                    (unsigned long long)r->frames_received, (unsigned long long)o->frames,
                    grace_s);
        } else {
            fprintf(stderr, ROLE ": received %llu of %llu frames before the timeout%s%s\n",
                    (unsigned long long)r->frames_received, (unsigned long long)o->frames,
                    last_refusal != NULL ? "; not attached: the driver's last refusal: " : "",
                    last_refusal != NULL ? last_refusal : "");
        }
        return false;
    }
    return true;
}

static bool run(const options *o, report *r) {
    double started = example_now_s();
    double deadline = started + o->timeout_s;
    tp_config *config = example_config(ROLE, &o->client);
    if (config == NULL) {
        return false;
    }
    tp_status status = tp_config_set_announce_period_ms(
        config, o->announce_period_ms == 0 ? 1 : o->announce_period_ms);
    if (status == TP_OK && o->per_consumer_channel != NULL) {
        status = tp_config_set_per_consumer_descriptor(config, o->per_consumer_channel,
                                                       o->per_consumer_stream_id);
    }
    if (status != TP_OK) {
        example_report(ROLE, "configuring the consumer", status);
        tp_config_close(config);
        return false;
    }
    tp_consumer *consumer = NULL;
    for (;;) {
        status = tp_consumer_create(config, o->client.stream_id, &consumer);
        if (status == TP_OK) {
            break;
        }
        if (status != TP_ERROR_CONNECT || example_now_s() >= deadline || example_interrupted) {
            example_report_connect(ROLE, status, example_now_s() - started);
            tp_config_close(config);
            return false;
        }
        example_sleep_ns(200000000L);
    }
    tp_config_close(config);
    seen s;
    memset(&s, 0, sizeof s);
    s.verify = o->verify;
    s.expect_trace_id = o->expect_trace_id;
    bool ok = false;
    if (o->verify && (s.table = example_pattern_table(MAX_VERIFIED_LEN)) == NULL) {
        fprintf(stderr, ROLE ": out of memory\n");
    } else {
        ok = read_frames(o, consumer, r, &s, deadline);
    }
    free((void *)s.table);
    tp_consumer_close(consumer);
    return ok;
}

int main(int argc, char **argv) {
    options o;
    parse(argc, argv, &o);
    example_install_signals();
    report r;
    memset(&r, 0, sizeof r);
    bool ok = example_check_abi(ROLE) && run(&o, &r);
    const tp_consumer_counters *c = &r.counters;
    double secs = r.last_frame - r.first_frame;
    double fps = secs > 0.0 ? (double)r.frames_received / secs : 0.0;
    double mibps = secs > 0.0 ? (double)r.bytes_received / secs / (1024.0 * 1024.0) : 0.0;
    /* The drop groups of the Rust example: overwritten frames are late; slots that
     * contradict their descriptor or break a header or tensor rule are invalid; the rest
     * (unmapped, epoch, duplicates) other. */
    uint64_t late = c->drops_late;
    uint64_t invalid = c->drops_not_committed + c->drops_stale + c->drops_header_format + c->drops_payload_slot + c->drops_pool +
                       c->drops_length + c->drops_payload_offset + c->drops_tensor;
    uint64_t other = c->drops_unmapped + c->drops_awaiting_epoch + c->drops_epoch +
                     c->drops_duplicate + c->drops_fallback + c->drops_seq_regression;
    printf("{\"role\":\"consumer\",\"frames_received\":%llu,\"frames_verified\":%llu,"
           "\"verify_failures\":%llu,\"drops_gap\":%llu,\"drops_late\":%llu,"
           "\"drops_resync\":%llu,\"drops_invalid\":%llu,\"drops_other\":%llu,"
           "\"epoch_changes\":%llu,\"trace_ids_verified\":%llu,\"trace_failures\":%llu,"
           "\"interrupted\":%s,\"elapsed_s\":%.6f,"
           "\"frames_per_s\":%.3f,\"mib_per_s\":%.3f,",
           (unsigned long long)r.frames_received, (unsigned long long)r.frames_verified,
           (unsigned long long)r.verify_failures, (unsigned long long)c->drops_gap,
           (unsigned long long)late, (unsigned long long)c->drops_resync,
           (unsigned long long)invalid, (unsigned long long)other,
           (unsigned long long)c->epoch_changes, (unsigned long long)r.trace_ids_verified,
           (unsigned long long)r.trace_failures, example_interrupted ? "true" : "false", secs,
           fps, mibps);
    printf("\"meta_version\":%u,\"meta_name\":", (unsigned)r.meta.meta_version);
    example_print_json_string(r.meta.name);
    printf(",\"meta_summary\":");
    example_print_json_string(r.meta.summary);
    printf(",\"meta_attrs\":");
    example_print_json_string(r.meta.attrs);
    printf(",\"meta_changes\":%llu,\"first_frame_meta_version\":%u,"
           "\"last_frame_meta_version\":%u,\"frames_meta_unseen\":%llu,"
           "\"frame_meta_regressions\":%llu}\n",
           (unsigned long long)r.meta.changes, (unsigned)r.first_frame_meta_version,
           (unsigned)r.last_frame_meta_version, (unsigned long long)r.frames_meta_unseen,
           (unsigned long long)r.frame_meta_regressions);
    fflush(stdout);
    if (example_interrupted) {
        return 130;
    }
    bool verified = !o.verify || (r.verify_failures == 0 && r.frames_verified == r.frames_received);
    verified = verified && r.trace_failures == 0;
    return ok && r.frames_received >= o.frames && verified ? 0 : 1;
}
