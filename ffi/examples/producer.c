/*
 * Publishes test frames on a tensorpool stream through a running tp-driver: the C
 * counterpart of examples/producer.rs, with the same flags, pattern and JSON line.
 *
 *   producer --stream-id 10000 --frames 10000 --payload-bytes 65536 --rate 1000
 *
 * Without --aeron-dir it uses Aeron's default directory (AERON_DIR, else
 * /dev/shm/aeron-<user>), where a driver without driver.aeron_dir runs. It connects and
 * attaches (retrying for at most --timeout-s; a refusal that waiting cannot cure, such as
 * an unknown stream without --create, ends the run at once with the fix), publishes --frames frames
 * at --rate per second (0 = as fast as possible) by claiming each payload slot and
 * filling it in place (one memcpy), keeps its lease for --linger-ms, detaches and prints
 * one JSON line:
 *
 *   {"role":"producer","stream_id":N,"requested_stream_id":N,"frames_sent":N,
 *    "frames_too_large":N,"descriptors_dropped":N,"epoch_changes":N,"interrupted":false,
 *    "elapsed_s":F,"frames_per_s":F,"mib_per_s":F}
 *
 * stream_id is the stream the driver granted (0 if none): with --create the driver may
 * create the stream under another id from its driver.stream_id_range, printed on stderr
 * too; consumers must read that id.
 *
 * With --meta-name NAME it publishes the data source's metadata once attached, before
 * the first frame: that name, --meta-summary, a text/plain attribute per --meta-attr
 * KEY=VALUE, and phase=1; --meta-change-at N sets phase=2 before frame N (frames from N
 * on carry the next metadata version); --meta-interval-ms is the re-announce period.
 *
 * Byte i of the frame with sequence s is (s + i) mod 251, a one-dimensional UINT8 tensor
 * with dims[0] = the payload length. Exit status: 0 when every frame was published,
 * 130 after SIGINT/SIGTERM, 1 otherwise.
 */
#include "example_metadata.h"

#define ROLE "producer"

typedef struct options {
    example_client_options client;
    uint64_t frames;
    size_t payload_bytes;
    double rate;
    bool create;
    uint64_t timeout_s;
    uint64_t linger_ms;
    uint64_t trace_id; /* 0: frames carry no trace id */
    example_meta_options meta;
} options;

typedef struct report {
    uint32_t stream_id; /* granted; 0 until attached */
    bool refused_for_good; /* a refusal waiting cannot cure ended the run */
    char last_refusal[TP_EVENT_MESSAGE_LEN + 32]; /* "CODE: message", "" if none */
    uint64_t frames_sent;
    uint64_t frames_too_large;
    uint64_t descriptors_dropped;
    uint64_t epoch_changes;
    double elapsed_s;
} report;

static void usage(void) {
    fprintf(stderr,
            "usage: producer [--aeron-dir DIR (default: AERON_DIR, else /dev/shm/aeron-<user>)]\n"
            "  [--stream-id 10000] [--frames 1000]\n"
            "  [--payload-bytes 4096] [--rate 0] [--channel aeron:ipc?term-length=4m]\n"
            "  [--control-stream-id 1000] [--announce-stream-id 1001]\n"
            "  [--descriptor-stream-id 1100] [--qos-stream-id 1200]\n"
            "  [--allowed-base-dir /dev/shm/tensorpool]... [--client-id 0] [--create]\n"
            "  [--keepalive-ms BOUND] [--timeout-s 30] [--linger-ms 500]\n"
            "  [--trace-id BASE (frame s carries trace id BASE + s; 0 = none)]\n"
            "  [--meta-name NAME [--meta-summary TEXT] [--meta-attr KEY=VALUE]...\n"
            "   [--meta-change-at FRAME] [--meta-interval-ms 1000]]\n");
}

static void parse(int argc, char **argv, options *o) {
    example_client_defaults(&o->client);
    o->trace_id = 0;
    o->frames = 1000;
    o->payload_bytes = 4096;
    o->rate = 0.0;
    o->create = false;
    o->timeout_s = 30;
    o->linger_ms = 500;
    example_meta_defaults(&o->meta);
    for (int i = 1; i < argc; i++) {
        const char *flag = argv[i];
        if (example_client_option(ROLE, "--client-id", &o->client, argc, argv, &i)) {
            continue;
        }
        if (strcmp(flag, "--create") == 0) {
            o->create = true;
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
        const char *value = argv[++i];
        if (example_meta_option(ROLE, flag, value, &o->meta)) {
            continue;
        }
        if (strcmp(flag, "--frames") == 0) {
            o->frames = example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--payload-bytes") == 0) {
            o->payload_bytes = (size_t)example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--rate") == 0) {
            o->rate = example_parse_f64(ROLE, flag, value);
        } else if (strcmp(flag, "--timeout-s") == 0) {
            o->timeout_s = example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--linger-ms") == 0) {
            o->linger_ms = example_parse_u64(ROLE, flag, value);
        } else if (strcmp(flag, "--trace-id") == 0) {
            o->trace_id = example_parse_u64(ROLE, flag, value);
        } else {
            fprintf(stderr, ROLE ": unknown option %s\n", flag);
            usage();
            exit(2);
        }
    }
}

/* One duty cycle and its events; returns the work done, or -1 on a failure (including
 * a refusal that waiting cannot cure). */
static int duty_cycle(tp_producer *producer, uint32_t requested, report *r) {
    int work = 0;
    tp_status status = tp_producer_do_work(producer, &work);
    if (status != TP_OK) {
        example_report(ROLE, "duty cycle", status);
        return -1;
    }
    for (;;) {
        tp_producer_event event;
        status = tp_producer_poll_event(producer, &event);
        if (status != TP_OK) {
            example_report(ROLE, "events", status);
            return -1;
        }
        switch (event.kind) {
        case TP_PRODUCER_EVENT_NONE:
            return work;
        case TP_PRODUCER_EVENT_ATTACHED:
            r->stream_id = event.stream_id;
            r->last_refusal[0] = '\0';
            if (event.stream_id == requested) {
                fprintf(stderr, ROLE ": attached to stream %u (epoch %llu)\n",
                        (unsigned)event.stream_id, (unsigned long long)event.epoch);
            } else {
                fprintf(stderr,
                        ROLE ": attached to stream %u (epoch %llu), not the requested %u: the "
                             "driver created it under an id of its driver.stream_id_range; run "
                             "consumers with --stream-id %u\n",
                        (unsigned)event.stream_id, (unsigned long long)event.epoch,
                        (unsigned)requested, (unsigned)event.stream_id);
            }
            break;
        case TP_PRODUCER_EVENT_REATTACHED:
            r->epoch_changes++;
            r->last_refusal[0] = '\0';
            break;
        case TP_PRODUCER_EVENT_ATTACH_REFUSED: {
            const char *code = tp_producer_event_reason_name(event.kind, event.reason);
            const char *fix = tp_attach_refusal_fix(event.reason, event.message);
            snprintf(r->last_refusal, sizeof r->last_refusal, "%s: %s", code, event.message);
            if (fix != NULL) {
                fprintf(stderr,
                        ROLE ": the driver refused stream %u (%s), which waiting cannot "
                             "change; %s\n",
                        (unsigned)requested, r->last_refusal, fix);
                r->refused_for_good = true;
                return -1;
            }
            break;
        }
        default:
            fprintf(stderr, ROLE ": %s (%s, epoch %llu) %s\n", tp_producer_event_name(event.kind),
                    tp_producer_event_reason_name(event.kind, event.reason),
                    (unsigned long long)event.epoch, event.message);
            break;
        }
    }
}

/* Runs duty cycles until attached (true), or until the deadline or a signal (false). */
static bool wait_attached(const options *o, tp_producer *producer, report *r, double deadline) {
    example_backoff idle;
    example_idle_reset(&idle);
    while (!example_interrupted && example_now_s() < deadline) {
        int work = duty_cycle(producer, o->client.stream_id, r);
        if (work < 0) {
            return false;
        }
        tp_producer_info info;
        if (tp_producer_get_info(producer, &info) == TP_OK && info.attached) {
            return true;
        }
        example_idle(&idle, work);
    }
    return false;
}

/* Publishes every frame at the requested rate; false on a failure. */
static bool publish_all(const options *o, tp_producer *producer, report *r,
                        const tp_tensor *tensor, const uint8_t *table) {
    double period = o->rate > 0.0 ? 1.0 / o->rate : 0.0;
    double next_due = example_now_s();
    double last_progress = next_due;
    uint64_t attempted = 0;
    example_backoff idle;
    example_idle_reset(&idle);
    while (attempted < o->frames && !example_interrupted) {
        int work = duty_cycle(producer, o->client.stream_id, r);
        if (work < 0) {
            return false;
        }
        double now = example_now_s();
        if (period > 0.0 && now < next_due) {
            example_idle(&idle, work);
            continue;
        }
        if (attempted == o->meta.change_at && !example_set_metadata(ROLE, producer, &o->meta, 2)) {
            return false;
        }
        tp_claim claim;
        tp_status status = tp_producer_claim(producer, o->payload_bytes, &claim);
        if (status == TP_OK) {
            memcpy(claim.data, example_pattern(table, claim.seq), claim.len);
            if (o->trace_id != 0) {
                /* Descriptor fields of this frame only (Wire Spec 10.2.1): trace id and
                 * publish time. */
                tp_producer_set_frame_stamp(producer, o->trace_id + claim.seq, tp_monotonic_now_ns());
            }
            status = tp_producer_commit(producer, tensor, tp_monotonic_now_ns(), NULL);
            if (status != TP_OK) {
                example_report(ROLE, "commit", status);
                return false;
            }
            r->frames_sent++;
            last_progress = now;
            example_idle_reset(&idle);
        } else if (status == TP_ERROR_NOT_ATTACHED) {
            if (now - last_progress >= (double)o->timeout_s) {
                fprintf(stderr, ROLE ": lease lost and not regained within %llu s%s%s\n",
                        (unsigned long long)o->timeout_s,
                        r->last_refusal[0] != '\0' ? "; the driver's last refusal: " : "",
                        r->last_refusal);
                return false;
            }
            example_idle(&idle, work);
            continue;
        } else if (status == TP_ERROR_FRAME_TOO_LARGE) {
            if (r->frames_too_large == 0) {
                example_report(ROLE, "frames do not fit the stream's pools", status);
            }
            r->frames_too_large++;
        } else {
            example_report(ROLE, "claim", status);
            return false;
        }
        attempted++;
        if (period > 0.0) {
            next_due += period;
            /* After a stall (e.g. a reattach) resume the rate instead of bursting. */
            if (now - next_due > 0.1) {
                next_due = now;
            }
        }
    }
    return attempted == o->frames;
}

static void update_dropped(tp_producer *producer, report *r) {
    tp_producer_counters counters;
    if (tp_producer_get_counters(producer, &counters) == TP_OK) {
        r->descriptors_dropped = counters.descriptors_dropped;
    }
}

/* What each consumer last reported over QoS (Wire Spec 10.4.1): how far it trails the
 * newest frame and what it dropped. */
static void report_consumer_qos(tp_producer *producer) {
    tp_consumer_qos rows[16];
    size_t count = 0;
    if (tp_producer_get_consumer_qos(producer, rows, 16, &count) != TP_OK) {
        return;
    }
    for (size_t i = 0; i < count && i < 16; i++) {
        const tp_consumer_qos *q = &rows[i];
        if (q->lag == TP_QOS_LAG_UNKNOWN) {
            fprintf(stderr, ROLE ": consumer %u: last seq %llu (lag unknown)\n",
                    (unsigned)q->consumer_id, (unsigned long long)q->last_seq_seen);
        } else {
            fprintf(stderr, ROLE ": consumer %u: last seq %llu, lag %llu, drops gap %llu late %llu\n",
                    (unsigned)q->consumer_id, (unsigned long long)q->last_seq_seen,
                    (unsigned long long)q->lag, (unsigned long long)q->drops_gap,
                    (unsigned long long)q->drops_late);
        }
    }
}

static bool run(const options *o, report *r) {
    tp_config *config = example_config(ROLE, &o->client);
    if (config == NULL) {
        return false;
    }
    if (o->meta.interval_ms != 0 &&
        tp_config_set_metadata_interval_ms(config, o->meta.interval_ms) != TP_OK) {
        example_report(ROLE, "--meta-interval-ms", TP_ERROR_INVALID_ARGUMENT);
        tp_config_close(config);
        return false;
    }
    if (o->create && tp_config_set_publish_mode(config, TP_PUBLISH_EXISTING_OR_CREATE) != TP_OK) {
        example_report(ROLE, "--create", TP_ERROR_INVALID_ARGUMENT);
        tp_config_close(config);
        return false;
    }
    double started = example_now_s();
    double deadline = started + (double)o->timeout_s;
    tp_producer *producer = NULL;
    for (;;) {
        tp_status status = tp_producer_create(config, o->client.stream_id, &producer);
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

    bool ok = false;
    uint8_t *table = example_pattern_table(o->payload_bytes);
    tp_tensor tensor;
    if (table == NULL) {
        fprintf(stderr, ROLE ": out of memory\n");
    } else if (tp_tensor_bytes(o->payload_bytes, &tensor) != TP_OK) {
        example_report(ROLE, "--payload-bytes", TP_ERROR_INVALID_TENSOR);
    } else if (wait_attached(o, producer, r, example_now_s() + (double)o->timeout_s)) {
        double start = example_now_s();
        ok = example_set_metadata(ROLE, producer, &o->meta, 1) &&
             publish_all(o, producer, r, &tensor, table);
        r->elapsed_s = example_now_s() - start;
        update_dropped(producer, r);
        /* Keep the lease so consumers can read the last frames before the epoch ends. */
        double linger = example_now_s() + (double)o->linger_ms / 1000.0;
        example_backoff idle;
        example_idle_reset(&idle);
        while (ok && !example_interrupted && example_now_s() < linger) {
            int work = duty_cycle(producer, o->client.stream_id, r);
            if (work < 0) {
                ok = false;
                break;
            }
            example_idle(&idle, work);
        }
        update_dropped(producer, r);
        report_consumer_qos(producer);
    } else if (!example_interrupted && !r->refused_for_good) {
        if (r->last_refusal[0] != '\0') {
            fprintf(stderr, ROLE ": not attached to stream %u within %llu s; the driver's last "
                            "refusal: %s\n",
                    (unsigned)o->client.stream_id, (unsigned long long)o->timeout_s,
                    r->last_refusal);
        } else {
            fprintf(stderr,
                    ROLE ": not attached to stream %u within %llu s; no refusal came back: does "
                         "a driver serve control stream %u on %s (`tp status` names its "
                         "streams)?\n",
                    (unsigned)o->client.stream_id, (unsigned long long)o->timeout_s,
                    (unsigned)o->client.control_stream_id, o->client.channel);
        }
    }
    free(table);
    tp_producer_close(producer);
    return ok;
}

int main(int argc, char **argv) {
    options o;
    parse(argc, argv, &o);
    example_install_signals();
    report r;
    memset(&r, 0, sizeof r);
    bool ok = example_check_abi(ROLE) && run(&o, &r);
    double fps = r.elapsed_s > 0.0 ? (double)r.frames_sent / r.elapsed_s : 0.0;
    double mibps = fps * (double)o.payload_bytes / (1024.0 * 1024.0);
    printf("{\"role\":\"producer\",\"stream_id\":%u,\"requested_stream_id\":%u,"
           "\"frames_sent\":%llu,\"frames_too_large\":%llu,"
           "\"descriptors_dropped\":%llu,\"epoch_changes\":%llu,\"interrupted\":%s,"
           "\"elapsed_s\":%.6f,\"frames_per_s\":%.3f,\"mib_per_s\":%.3f}\n",
           (unsigned)r.stream_id, (unsigned)o.client.stream_id, (unsigned long long)r.frames_sent, (unsigned long long)r.frames_too_large,
           (unsigned long long)r.descriptors_dropped, (unsigned long long)r.epoch_changes,
           example_interrupted ? "true" : "false", r.elapsed_s, fps, mibps);
    fflush(stdout);
    if (example_interrupted) {
        return 130;
    }
    return ok && r.frames_sent == o.frames ? 0 : 1;
}
