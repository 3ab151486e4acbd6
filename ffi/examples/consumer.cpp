// Reads frames from a tensorpool stream through a running tp-driver, written against the
// C++ wrapper (tensorpool.hpp). Same flags, checks and JSON line as consumer.c and the
// Rust consumer example:
//
//   consumer_cpp --stream-id 10000 --frames 10000 --verify
//
// Without --aeron-dir it uses Aeron's default directory (AERON_DIR, else
// /dev/shm/aeron-<user>). The run also ends when the producer finished: it detached and
// no frame came within two announce periods after.
//
// Exit status: 0 when --frames frames were received (and verified), 130 after
// SIGINT/SIGTERM, 1 otherwise.
#include <cinttypes>
#include <cstring>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "example_common.h"
#include "tensorpool.hpp"

namespace {

constexpr const char *kRole = "consumer";
constexpr int kFramesPerCycle = 64;

struct Options {
    example_client_options client;
    std::uint64_t frames = 1000;
    double timeout_s = 30.0;
    bool verify = false;
    std::uint64_t announce_period_ms = 1000;
    std::string per_consumer_channel;
    std::uint32_t per_consumer_stream_id = 0;
};

struct Report {
    std::uint64_t frames_received = 0;
    std::uint64_t frames_verified = 0;
    std::uint64_t verify_failures = 0;
    std::uint64_t bytes_received = 0;
    double first_frame = 0.0;
    double last_frame = 0.0;
    tp_consumer_counters counters{};
};

Options parse(int argc, char **argv) {
    Options o;
    example_client_defaults(&o.client);
    for (int i = 1; i < argc; i++) {
        std::string flag = argv[i];
        if (example_client_option(kRole, "--consumer-id", &o.client, argc, argv, &i)) {
            continue;
        }
        if (flag == "--verify") {
            o.verify = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s: unknown option or missing value: %s\n", kRole, flag.c_str());
            std::exit(2);
        }
        const char *value = argv[++i];
        if (flag == "--frames") {
            o.frames = example_parse_u64(kRole, flag.c_str(), value);
        } else if (flag == "--timeout-s") {
            o.timeout_s = example_parse_f64(kRole, flag.c_str(), value);
        } else if (flag == "--announce-period-ms") {
            o.announce_period_ms = example_parse_u64(kRole, flag.c_str(), value);
        } else if (flag == "--per-consumer-descriptor") {
            std::string text = value;
            auto colon = text.rfind(':');
            if (colon == std::string::npos || colon == 0) {
                std::fprintf(stderr, "%s: %s is not CHANNEL:STREAM_ID\n", kRole, value);
                std::exit(2);
            }
            o.per_consumer_channel = text.substr(0, colon);
            o.per_consumer_stream_id =
                example_parse_u32(kRole, flag.c_str(), text.substr(colon + 1).c_str());
        } else {
            std::fprintf(stderr, "%s: unknown option %s\n", kRole, flag.c_str());
            std::exit(2);
        }
    }
    return o;
}

tensorpool::Config config_of(const Options &o) {
    const example_client_options &c = o.client;
    tensorpool::Config config;
    if (c.aeron_dir != nullptr) {
        config.aeron_dir(c.aeron_dir);
    }
    config.channel(c.channel)
        .stream_ids(c.control_stream_id, c.announce_stream_id, c.descriptor_stream_id,
                    c.qos_stream_id)
        .client_id(c.client_id)
        .announce_period(std::chrono::milliseconds(o.announce_period_ms == 0 ? 1 : o.announce_period_ms))
        .connect_timeout(std::chrono::milliseconds(EXAMPLE_CONNECT_ATTEMPT_MS));
    if (c.keepalive_ms != 0) {
        config.keepalive_interval(std::chrono::milliseconds(c.keepalive_ms));
    }
    for (std::size_t k = 0; k < c.allowed_base_dir_count; k++) {
        if (k == 0) {
            config.allowed_base_dir(c.allowed_base_dirs[k]);
        } else {
            config.add_allowed_base_dir(c.allowed_base_dirs[k]);
        }
    }
    if (!o.per_consumer_channel.empty()) {
        config.per_consumer_descriptor(o.per_consumer_channel, o.per_consumer_stream_id);
    }
    return config;
}

// Connects, retrying while the media driver is not there yet.
tensorpool::Consumer connect(const Options &o, double deadline) {
    tensorpool::Config config = config_of(o);
    double started = example_now_s();
    for (;;) {
        try {
            return tensorpool::Consumer(config, o.client.stream_id);
        } catch (const tensorpool::Error &error) {
            if (error.status() != TP_ERROR_CONNECT || example_now_s() >= deadline ||
                example_interrupted) {
                std::fprintf(stderr, "%s: gave up connecting after %.1f s of attempts (each waits %d ms)\n",
                             kRole, example_now_s() - started, EXAMPLE_CONNECT_ATTEMPT_MS);
                throw;
            }
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
}

bool run(const Options &o, Report &r) {
    double deadline = example_now_s() + o.timeout_s;
    tensorpool::Consumer consumer = connect(o, deadline);
    std::unique_ptr<std::uint8_t, decltype(&std::free)> table(nullptr, &std::free);
    constexpr std::size_t kMaxVerified = 16u * 1024u * 1024u;
    if (o.verify) {
        table.reset(example_pattern_table(kMaxVerified));
        if (!table) {
            std::fprintf(stderr, "%s: out of memory\n", kRole);
            return false;
        }
    }
    example_backoff idle;
    example_idle_reset(&idle);
    const double grace_s =
        2.0 * static_cast<double>(o.announce_period_ms == 0 ? 1 : o.announce_period_ms) / 1000.0;
    double producer_detached_at = 0.0; // when the producer detached (it finished); 0: not
    std::string last_refusal;          // response code of the last attach refusal, if any
    bool producer_finished = false;
    while (r.frames_received < o.frames && example_now_s() < deadline && !example_interrupted) {
        int work = consumer.do_work();
        while (auto event = consumer.poll_event()) {
            const std::string reason = tp_consumer_event_reason_name(event->kind, event->reason);
            if (event->kind == TP_CONSUMER_EVENT_ATTACH_REFUSED) {
                last_refusal = reason; // retried: a producer may still create the stream
            } else if (event->kind == TP_CONSUMER_EVENT_ATTACHED) {
                last_refusal.clear();
            } else if (event->kind == TP_CONSUMER_EVENT_PRODUCER_REVOKED && reason == "DETACHED") {
                // A producer that finishes detaches: normal, noted but not a warning.
                if (producer_detached_at == 0.0) {
                    producer_detached_at = example_now_s();
                }
            } else if (event->kind != TP_CONSUMER_EVENT_ATTACHED &&
                       event->kind != TP_CONSUMER_EVENT_EPOCH_CHANGED) {
                std::fprintf(stderr, "%s: %s (%s)\n", kRole, tp_consumer_event_name(event->kind),
                             reason.c_str());
            }
        }
        if (producer_detached_at != 0.0 && example_now_s() - producer_detached_at >= grace_s) {
            producer_finished = true;
            break;
        }
        for (int k = 0; k < kFramesPerCycle && r.frames_received < o.frames; k++) {
            std::size_t len = 0;
            bool matches = false;
            auto result = consumer.poll([&](const tensorpool::Frame &frame) {
                auto payload = frame.payload();
                const tp_tensor &tensor = frame.tensor();
                len = payload.size();
                matches = o.verify && tensor.dtype == TP_DTYPE_UINT8 && tensor.ndims == 1 &&
                          tensor.dims[0] >= 0 &&
                          static_cast<std::size_t>(tensor.dims[0]) == payload.size() &&
                          payload.size() <= kMaxVerified &&
                          std::memcmp(payload.data(), example_pattern(table.get(), frame.seq()),
                                      payload.size()) == 0;
            });
            if (result.empty()) {
                break;
            }
            work++;
            if (!result.delivered()) {
                continue;
            }
            double now = example_now_s();
            if (r.frames_received == 0) {
                r.first_frame = now;
            }
            r.last_frame = now;
            r.frames_received++;
            producer_detached_at = 0.0; // frames flow: a producer is there
            r.bytes_received += len;
            if (o.verify) {
                (matches ? r.frames_verified : r.verify_failures)++;
            }
        }
        r.counters = consumer.counters();
        example_idle(&idle, work);
    }
    if (r.frames_received < o.frames && !example_interrupted) {
        if (producer_finished) {
            std::fprintf(stderr,
                         "%s: received %" PRIu64 " of %" PRIu64 " frames: the producer detached and "
                         "no frame came within %.1f s (the frames it sent and this consumer "
                         "missed are in the drops_* figures)\n",
                         kRole, r.frames_received, o.frames, grace_s);
        } else {
            std::fprintf(stderr, "%s: received %" PRIu64 " of %" PRIu64 " frames before the timeout%s%s\n",
                         kRole, r.frames_received, o.frames,
                         last_refusal.empty() ? "" : "; not attached: the driver's last refusal: ",
                         last_refusal.c_str());
        }
        return false;
    }
    return true;
}

} // namespace

int main(int argc, char **argv) {
    Options o = parse(argc, argv);
    example_install_signals();
    Report r;
    bool ok = false;
    try {
        ok = example_check_abi(kRole) && run(o, r);
    } catch (const std::exception &error) {
        std::fprintf(stderr, "%s: %s\n", kRole, error.what());
    }
    const tp_consumer_counters &c = r.counters;
    double secs = r.last_frame - r.first_frame;
    double fps = secs > 0.0 ? (double)r.frames_received / secs : 0.0;
    double mibps = secs > 0.0 ? (double)r.bytes_received / secs / (1024.0 * 1024.0) : 0.0;
    std::uint64_t late = c.drops_late;
    std::uint64_t invalid = c.drops_not_committed + c.drops_stale + c.drops_header_format + c.drops_payload_slot + c.drops_pool +
                            c.drops_length + c.drops_payload_offset + c.drops_tensor;
    std::uint64_t other =
        c.drops_unmapped + c.drops_awaiting_epoch + c.drops_epoch + c.drops_duplicate;
    std::printf("{\"role\":\"consumer\",\"frames_received\":%" PRIu64 ",\"frames_verified\":%" PRIu64
                ",\"verify_failures\":%" PRIu64 ",\"drops_gap\":%" PRIu64 ",\"drops_late\":%" PRIu64
                ",\"drops_resync\":%" PRIu64 ",\"drops_invalid\":%" PRIu64 ",\"drops_other\":%" PRIu64
                ",\"epoch_changes\":%" PRIu64 ",\"interrupted\":%s,\"elapsed_s\":%.6f,"
                "\"frames_per_s\":%.3f,\"mib_per_s\":%.3f}\n",
                r.frames_received, r.frames_verified, r.verify_failures, c.drops_gap, late,
                c.drops_resync, invalid, other, c.epoch_changes,
                example_interrupted ? "true" : "false", secs, fps, mibps);
    std::fflush(stdout);
    if (example_interrupted) {
        return 130;
    }
    bool verified = !o.verify || (r.verify_failures == 0 && r.frames_verified == r.frames_received);
    return ok && r.frames_received >= o.frames && verified ? 0 : 1;
}
