// tensorpool.hpp: header-only C++17 wrapper of the tensorpool C ABI (tensorpool.h).
//
// RAII, move-only handles (Config, Producer, Claim, Consumer); failures throw
// tensorpool::Error carrying the tp_status and the library's message; payloads are
// span-like views (tensorpool::Span). C++ code never touches a raw handle. The C rules
// hold unchanged: a Producer or Consumer is driven by the thread that created it, a
// Claim's bytes live until commit()/abort() (the destructor aborts), and a Frame with
// its payload lives only inside the poll callback. An exception thrown by the callback
// is carried across the C library and rethrown by poll() once the library has
// returned.
//
//   tensorpool::Config config;
//   config.aeron_dir("/dev/shm/aeron-me").allowed_base_dir("/dev/shm/tensorpool");
//   tensorpool::Consumer consumer(config, 10000);
//   for (;;) {
//       consumer.do_work();
//       auto result = consumer.poll([](const tensorpool::Frame &f) { use(f.payload()); });
//   }
#ifndef TENSORPOOL_HPP
#define TENSORPOOL_HPP

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "tensorpool.h"

namespace tensorpool {

// A failed call: its status (a negative tp_status) and the library's message.
class Error : public std::runtime_error {
  public:
    Error(tp_status status, const std::string &what)
        : std::runtime_error(what + ": " + tp_status_name(status) + ": " +
                             tp_last_error_message()),
          status_(status) {}

    tp_status status() const noexcept { return status_; }

  private:
    tp_status status_;
};

// Throws Error unless status is TP_OK.
inline void check(tp_status status, const char *what) {
    if (status != TP_OK) {
        throw Error(status, what);
    }
}

// A view of contiguous elements owned by someone else (std::span for C++17).
template <typename T> class Span {
  public:
    constexpr Span() noexcept = default;
    constexpr Span(T *data, std::size_t size) noexcept : data_(data), size_(size) {}

    constexpr T *data() const noexcept { return data_; }
    constexpr std::size_t size() const noexcept { return size_; }
    constexpr bool empty() const noexcept { return size_ == 0; }
    constexpr T *begin() const noexcept { return data_; }
    constexpr T *end() const noexcept { return data_ + size_; }
    constexpr T &operator[](std::size_t i) const noexcept { return data_[i]; }

  private:
    T *data_ = nullptr;
    std::size_t size_ = 0;
};

// The library, ABI, layout and schema versions.
inline tp_version_info version() {
    tp_version_info info{};
    check(tp_version(&info), "tp_version");
    return info;
}

// A one-dimensional UINT8 tensor of len bytes.
inline tp_tensor bytes_tensor(std::size_t len) {
    tp_tensor tensor{};
    check(tp_tensor_bytes(len, &tensor), "tp_tensor_bytes");
    return tensor;
}

// CLOCK_MONOTONIC in nanoseconds (frame timestamps, lease deadlines).
inline std::uint64_t monotonic_now_ns() noexcept { return tp_monotonic_now_ns(); }

// Client settings (see tp_config); setters chain.
class Config {
  public:
    Config() { check(tp_config_create(&config_), "tp_config_create"); }
    ~Config() { tp_config_close(config_); }
    Config(Config &&other) noexcept : config_(std::exchange(other.config_, nullptr)) {}
    Config &operator=(Config &&other) noexcept {
        std::swap(config_, other.config_);
        return *this;
    }
    Config(const Config &) = delete;
    Config &operator=(const Config &) = delete;

    Config &aeron_dir(const std::string &dir) {
        check(tp_config_set_aeron_dir(config_, dir.c_str()), "aeron_dir");
        return *this;
    }
    Config &channel(const std::string &uri) {
        check(tp_config_set_channel(config_, uri.c_str()), "channel");
        return *this;
    }
    Config &stream_ids(std::uint32_t control, std::uint32_t announce, std::uint32_t descriptor,
                       std::uint32_t qos) {
        check(tp_config_set_stream_ids(config_, control, announce, descriptor, qos),
              "stream_ids");
        return *this;
    }
    Config &allowed_base_dir(const std::string &dir) {
        check(tp_config_set_allowed_base_dir(config_, dir.c_str()), "allowed_base_dir");
        return *this;
    }
    Config &add_allowed_base_dir(const std::string &dir) {
        check(tp_config_add_allowed_base_dir(config_, dir.c_str()), "add_allowed_base_dir");
        return *this;
    }
    Config &client_id(std::uint32_t id) {
        check(tp_config_set_client_id(config_, id), "client_id");
        return *this;
    }
    Config &keepalive_interval(std::chrono::milliseconds interval) {
        check(tp_config_set_keepalive_interval_ms(config_, millis(interval)), "keepalive_interval");
        return *this;
    }
    Config &attach_timeout(std::chrono::milliseconds timeout) {
        check(tp_config_set_attach_timeout_ms(config_, millis(timeout)), "attach_timeout");
        return *this;
    }
    Config &connect_timeout(std::chrono::milliseconds timeout) {
        check(tp_config_set_connect_timeout_ms(config_, millis(timeout)), "connect_timeout");
        return *this;
    }
    Config &announce_period(std::chrono::milliseconds period) {
        check(tp_config_set_announce_period_ms(config_, millis(period)), "announce_period");
        return *this;
    }
    Config &publish_mode(tp_publish_mode mode) {
        check(tp_config_set_publish_mode(config_, static_cast<std::int32_t>(mode)),
              "publish_mode");
        return *this;
    }
    Config &per_consumer_descriptor(const std::string &uri, std::uint32_t stream_id) {
        check(tp_config_set_per_consumer_descriptor(config_, uri.c_str(), stream_id),
              "per_consumer_descriptor");
        return *this;
    }
    // The metadata stream (default: the common channel, stream 1300).
    Config &metadata_stream(const std::string &uri, std::uint32_t stream_id) {
        check(tp_config_set_metadata_stream(config_, uri.c_str(), stream_id), "metadata_stream");
        return *this;
    }
    // How often a producer re-announces its metadata.
    Config &metadata_interval(std::chrono::milliseconds interval) {
        check(tp_config_set_metadata_interval_ms(config_, millis(interval)), "metadata_interval");
        return *this;
    }
    Config &max_outstanding_seq_gap(std::uint64_t frames) {
        check(tp_config_set_max_outstanding_seq_gap(config_, frames), "max_outstanding_seq_gap");
        return *this;
    }
    // RATE_LIMITED consumers: at most max_rate_hz frames a second (0: every frame).
    Config &rate_limit(std::uint32_t max_rate_hz) {
        check(tp_config_set_rate_limit(config_, max_rate_hz), "rate_limit");
        return *this;
    }
    // Frame progress for consumers, with hints (0: the producer's default).
    Config &progress(bool on, std::uint32_t interval_us = 0, std::uint32_t bytes_delta = 0,
                     std::uint32_t major_delta_units = 0) {
        check(tp_config_set_progress(config_, on ? 1 : 0, interval_us, bytes_delta,
                                     major_delta_units),
              "progress");
        return *this;
    }

    const tp_config *get() const noexcept { return config_; }

  private:
    static std::uint64_t millis(std::chrono::milliseconds d) {
        return d.count() < 0 ? 0 : static_cast<std::uint64_t>(d.count());
    }
    tp_config *config_ = nullptr;
};

// One metadata attribute, owned (Wire Spec §10.3).
struct Attribute {
    std::string key;
    std::string format;
    std::vector<std::uint8_t> value;
};

// A data source's metadata, owned: what a producer sets and a consumer holds.
struct Metadata {
    std::uint32_t meta_version = 0; // 0: none (set by the library)
    std::string name;
    std::string summary;
    std::vector<Attribute> attributes;
};

class Producer;

// A claimed payload slot: fill data(), then commit() or abort(); the destructor aborts
// a claim still open. Other producer calls are refused while it is open.
class Claim {
  public:
    Claim(Claim &&other) noexcept
        : producer_(std::exchange(other.producer_, nullptr)), claim_(other.claim_) {}
    Claim &operator=(Claim &&) = delete;
    Claim(const Claim &) = delete;
    Claim &operator=(const Claim &) = delete;
    ~Claim() {
        if (producer_ != nullptr) {
            tp_producer_abort(producer_);
        }
    }

    Span<std::uint8_t> data() const noexcept { return {claim_.data, claim_.len}; }
    std::uint64_t seq() const noexcept { return claim_.seq; }

    // Publishes the frame described by tensor; returns its sequence.
    std::uint64_t commit(const tp_tensor &tensor, std::uint64_t timestamp_ns) {
        std::uint64_t seq = 0;
        tp_producer *producer = std::exchange(producer_, nullptr);
        check(tp_producer_commit(producer, &tensor, timestamp_ns, &seq), "tp_producer_commit");
        return seq;
    }

    // Gives the slot up (consumers see a gap).
    void abort() { check(tp_producer_abort(std::exchange(producer_, nullptr)), "tp_producer_abort"); }

  private:
    friend class Producer;
    Claim(tp_producer *producer, tp_claim claim) : producer_(producer), claim_(claim) {}
    tp_producer *producer_;
    tp_claim claim_;
};

// A frame filled with progress: write data() in order, report(filled) as it fills, then
// commit(); the destructor aborts a fill still open.
class Fill {
  public:
    Fill(Fill &&other) noexcept
        : producer_(std::exchange(other.producer_, nullptr)), claim_(other.claim_) {}
    Fill &operator=(Fill &&) = delete;
    Fill(const Fill &) = delete;
    Fill &operator=(const Fill &) = delete;
    ~Fill() {
        if (producer_ != nullptr) {
            tp_producer_abort(producer_);
        }
    }

    Span<std::uint8_t> data() const noexcept { return {claim_.data, claim_.len}; }
    std::uint64_t seq() const noexcept { return claim_.seq; }

    // The first filled bytes are written as of now_ns; returns whether a PROGRESS went out.
    bool report(std::uint64_t filled, std::uint64_t now_ns) {
        std::int32_t sent = 0;
        check(tp_producer_report_progress(producer_, filled, now_ns, &sent),
              "tp_producer_report_progress");
        return sent != 0;
    }

    // Publishes the frame (and COMPLETE); returns its sequence.
    std::uint64_t commit(std::uint64_t timestamp_ns) {
        std::uint64_t seq = 0;
        tp_producer *producer = std::exchange(producer_, nullptr);
        check(tp_producer_commit_filled(producer, timestamp_ns, &seq), "tp_producer_commit_filled");
        return seq;
    }

  private:
    friend class Producer;
    Fill(tp_producer *producer, tp_claim claim) : producer_(producer), claim_(claim) {}
    tp_producer *producer_;
    tp_claim claim_;
};

// A stream's producer (see tp_producer).
class Producer {
  public:
    Producer(const Config &config, std::uint32_t stream_id) {
        check(tp_producer_create(config.get(), stream_id, &producer_), "tp_producer_create");
    }
    ~Producer() { tp_producer_close(producer_); }
    Producer(Producer &&other) noexcept : producer_(std::exchange(other.producer_, nullptr)) {}
    Producer &operator=(Producer &&other) noexcept {
        std::swap(producer_, other.producer_);
        return *this;
    }
    Producer(const Producer &) = delete;
    Producer &operator=(const Producer &) = delete;

    // One duty cycle; returns the work done.
    int do_work() {
        int work = 0;
        check(tp_producer_do_work(producer_, &work), "tp_producer_do_work");
        return work;
    }

    // A payload slot of len bytes (throws Error with TP_ERROR_NOT_ATTACHED before the
    // lease is granted).
    Claim claim(std::size_t len) {
        tp_claim claim{};
        check(tp_producer_claim(producer_, len, &claim), "tp_producer_claim");
        return Claim(producer_, claim);
    }

    // The trace id and publish time the next frame's descriptor carries (0 = absent;
    // Wire Spec 10.2.1); the next publish or commit takes them.
    void set_frame_stamp(std::uint64_t trace_id, std::uint64_t descriptor_timestamp_ns = 0) {
        check(tp_producer_set_frame_stamp(producer_, trace_id, descriptor_timestamp_ns),
              "tp_producer_set_frame_stamp");
    }

    // The latest QoS report of each consumer of the stream (Wire Spec 10.4.1), with its
    // lag behind the newest frame (TP_QOS_LAG_UNKNOWN when not known).
    std::vector<tp_consumer_qos> consumer_qos() {
        std::size_t count = 0;
        check(tp_producer_get_consumer_qos(producer_, nullptr, 0, &count),
              "tp_producer_get_consumer_qos");
        std::vector<tp_consumer_qos> rows(count);
        check(tp_producer_get_consumer_qos(producer_, rows.data(), rows.size(), &count),
              "tp_producer_get_consumer_qos");
        rows.resize(std::min(count, rows.size()));
        return rows;
    }

    // A frame of len bytes filled over time, with frame progress (STARTED sent at now_ns).
    Fill claim_with_progress(std::size_t len, const tp_tensor &tensor, std::uint64_t now_ns) {
        tp_claim claim{};
        check(tp_producer_claim_with_progress(producer_, len, &tensor, now_ns, &claim),
              "tp_producer_claim_with_progress");
        return Fill(producer_, claim);
    }

    // Copies payload into a slot and publishes it; returns the sequence.
    std::uint64_t publish(Span<const std::uint8_t> payload, const tp_tensor &tensor,
                          std::uint64_t timestamp_ns) {
        std::uint64_t seq = 0;
        check(tp_producer_publish(producer_, payload.data(), payload.size(), &tensor,
                                  timestamp_ns, &seq),
              "tp_producer_publish");
        return seq;
    }

    // The oldest pending event, if any.
    std::optional<tp_producer_event> poll_event() {
        tp_producer_event event{};
        check(tp_producer_poll_event(producer_, &event), "tp_producer_poll_event");
        if (event.kind == TP_PRODUCER_EVENT_NONE) {
            return std::nullopt;
        }
        return event;
    }

    // Replaces the data source's metadata (meta_version is ignored); returns the version
    // frames carry from now on. Throws Error (TP_ERROR_INVALID_ARGUMENT) beyond the bounds.
    std::uint32_t set_metadata(const Metadata &metadata) {
        std::vector<tp_attribute> attrs;
        attrs.reserve(metadata.attributes.size());
        for (const Attribute &a : metadata.attributes) {
            attrs.push_back(tp_attribute{a.key.data(), a.key.size(), a.format.data(),
                                         a.format.size(), a.value.data(), a.value.size()});
        }
        std::uint32_t version = 0;
        check(tp_producer_set_metadata(producer_, metadata.name.c_str(), metadata.summary.c_str(),
                                       attrs.data(), attrs.size(), &version),
              "tp_producer_set_metadata");
        return version;
    }

    tp_producer_counters counters() {
        tp_producer_counters counters{};
        check(tp_producer_get_counters(producer_, &counters), "tp_producer_get_counters");
        return counters;
    }

    tp_producer_info info() {
        tp_producer_info info{};
        check(tp_producer_get_info(producer_, &info), "tp_producer_get_info");
        return info;
    }

  private:
    tp_producer *producer_ = nullptr;
};

// A frame being delivered: valid only inside the poll callback.
class Frame {
  public:
    explicit Frame(const tp_frame_info &info) noexcept : info_(info) {}

    Span<const std::uint8_t> payload() const noexcept { return {info_.payload, info_.payload_len}; }
    std::uint64_t seq() const noexcept { return info_.seq; }
    std::uint64_t epoch() const noexcept { return info_.epoch; }
    std::uint64_t timestamp_ns() const noexcept { return info_.timestamp_ns; }
    std::uint32_t stream_id() const noexcept { return info_.stream_id; }
    // The descriptor's trace id and publish time (0 = absent).
    std::uint64_t trace_id() const noexcept { return info_.trace_id; }
    std::uint64_t descriptor_timestamp_ns() const noexcept { return info_.descriptor_timestamp_ns; }
    // The metadata version the frame was taken under, and how it relates to the
    // consumer's metadata (a tp_meta_status).
    std::uint32_t meta_version() const noexcept { return info_.meta_version; }
    tp_meta_status meta_status() const noexcept {
        return static_cast<tp_meta_status>(info_.meta_status);
    }
    const tp_tensor &tensor() const noexcept { return info_.tensor; }
    const tp_frame_info &info() const noexcept { return info_; }

  private:
    tp_frame_info info_;
};

// What one poll did.
struct PollResult {
    tp_poll_result raw;

    bool empty() const noexcept { return raw.outcome == TP_POLL_EMPTY; }
    // The frame was intact after the callback returned: what it read counts.
    bool delivered() const noexcept { return raw.outcome == TP_POLL_DELIVERED; }
    bool dropped() const noexcept { return raw.outcome == TP_POLL_DROPPED; }
    // Skipped to stay under the rate limit (not a drop).
    bool rate_limited() const noexcept { return raw.outcome == TP_POLL_RATE_LIMITED; }
    std::uint64_t seq() const noexcept { return raw.seq; }
};

// A stream's consumer (see tp_consumer).
class Consumer {
  public:
    Consumer(const Config &config, std::uint32_t stream_id) {
        check(tp_consumer_create(config.get(), stream_id, &consumer_), "tp_consumer_create");
    }
    ~Consumer() { tp_consumer_close(consumer_); }
    Consumer(Consumer &&other) noexcept : consumer_(std::exchange(other.consumer_, nullptr)) {}
    Consumer &operator=(Consumer &&other) noexcept {
        std::swap(consumer_, other.consumer_);
        return *this;
    }
    Consumer(const Consumer &) = delete;
    Consumer &operator=(const Consumer &) = delete;

    // One duty cycle; returns the work done.
    int do_work() {
        int work = 0;
        check(tp_consumer_do_work(consumer_, &work), "tp_consumer_do_work");
        return work;
    }

    // Reads at most one descriptor; on_frame(const Frame &) runs on a frame that passed
    // the checks. Act on what it read only if the result says delivered().
    template <typename F> PollResult poll(F &&on_frame) {
        Trampoline<F> trampoline{on_frame, nullptr};
        PollResult result{};
        tp_status status =
            tp_consumer_poll(consumer_, &Trampoline<F>::call, &trampoline, &result.raw);
        if (trampoline.error) {
            std::rethrow_exception(trampoline.error);
        }
        check(status, "tp_consumer_poll");
        return result;
    }

    // Hands on_prefix(const tp_frame_prefix &) the filled part of the oldest frame being
    // written that has news; act on what it read only if the result is
    // TP_PROGRESS_DELIVERED.
    template <typename F> tp_progress_outcome poll_progress(F &&on_prefix) {
        PrefixTrampoline<F> trampoline{on_prefix, nullptr};
        std::int32_t outcome = TP_PROGRESS_EMPTY;
        tp_status status = tp_consumer_poll_progress(consumer_, &PrefixTrampoline<F>::call,
                                                     &trampoline, &outcome);
        if (trampoline.error) {
            std::rethrow_exception(trampoline.error);
        }
        check(status, "tp_consumer_poll_progress");
        return static_cast<tp_progress_outcome>(outcome);
    }

    // The oldest pending event, if any.
    std::optional<tp_consumer_event> poll_event() {
        tp_consumer_event event{};
        check(tp_consumer_poll_event(consumer_, &event), "tp_consumer_poll_event");
        if (event.kind == TP_CONSUMER_EVENT_NONE) {
            return std::nullopt;
        }
        return event;
    }

    // A copy of the metadata the consumer holds (nullopt before any arrived).
    std::optional<Metadata> metadata() {
        tp_metadata_info info{};
        check(tp_consumer_get_metadata(consumer_, &info), "tp_consumer_get_metadata");
        if (info.meta_version == 0) {
            return std::nullopt;
        }
        Metadata copy;
        copy.meta_version = info.meta_version;
        copy.name.assign(info.name, info.name_len);
        copy.summary.assign(info.summary, info.summary_len);
        for (std::size_t k = 0; k < info.attribute_count; k++) {
            tp_attribute a{};
            check(tp_consumer_get_metadata_attribute(consumer_, k, &a),
                  "tp_consumer_get_metadata_attribute");
            copy.attributes.push_back(Attribute{std::string(a.key, a.key_len),
                                                std::string(a.format, a.format_len),
                                                std::vector<std::uint8_t>(a.value, a.value + a.value_len)});
        }
        return copy;
    }

    tp_consumer_counters counters() {
        tp_consumer_counters counters{};
        check(tp_consumer_get_counters(consumer_, &counters), "tp_consumer_get_counters");
        return counters;
    }

    tp_consumer_info info() {
        tp_consumer_info info{};
        check(tp_consumer_get_info(consumer_, &info), "tp_consumer_get_info");
        return info;
    }

    // The Wire Spec 15.12 state (a tp_consumer_state value).
    int state() {
        int state = 0;
        check(tp_consumer_get_state(consumer_, &state), "tp_consumer_get_state");
        return state;
    }

    // The payload_fallback_uri while in FALLBACK, else std::nullopt.
    std::optional<std::string> fallback_uri() {
        if (state() != TP_CONSUMER_STATE_FALLBACK) {
            return std::nullopt;
        }
        std::size_t len = 0;
        check(tp_consumer_get_fallback_uri(consumer_, nullptr, 0, &len),
              "tp_consumer_get_fallback_uri");
        std::string uri(len + 1, '\0');
        check(tp_consumer_get_fallback_uri(consumer_, uri.data(), uri.size(), &len),
              "tp_consumer_get_fallback_uri");
        uri.resize(len);
        return uri;
    }

  private:
    // Calls the C++ callback from C; an exception is stored, never thrown through C.
    template <typename F> struct Trampoline {
        F &on_frame;
        std::exception_ptr error;

        static void call(const tp_frame *frame, void *user) noexcept {
            auto *self = static_cast<Trampoline *>(user);
            try {
                tp_frame_info info{};
                check(tp_frame_get(frame, &info), "tp_frame_get");
                self->on_frame(Frame(info));
            } catch (...) {
                self->error = std::current_exception();
            }
        }
    };

    template <typename F> struct PrefixTrampoline {
        F &on_prefix;
        std::exception_ptr error;

        static void call(const tp_frame_prefix *prefix, void *user) noexcept {
            auto *self = static_cast<PrefixTrampoline *>(user);
            try {
                self->on_prefix(*prefix);
            } catch (...) {
                self->error = std::current_exception();
            }
        }
    };

    tp_consumer *consumer_ = nullptr;
};

// An observer of the QoS stream that holds no lease (see tp_qos_monitor).
class QosMonitor {
  public:
    explicit QosMonitor(const Config &config) {
        check(tp_qos_monitor_create(config.get(), &monitor_), "tp_qos_monitor_create");
    }
    ~QosMonitor() { tp_qos_monitor_close(monitor_); }
    QosMonitor(QosMonitor &&other) noexcept : monitor_(std::exchange(other.monitor_, nullptr)) {}
    QosMonitor &operator=(QosMonitor &&other) noexcept {
        std::swap(monitor_, other.monitor_);
        return *this;
    }
    QosMonitor(const QosMonitor &) = delete;
    QosMonitor &operator=(const QosMonitor &) = delete;

    // Reads what arrived; on_report(const tp_qos_report &) runs once per report. Returns
    // the work done.
    template <typename F> int poll(F &&on_report) {
        Trampoline<F> trampoline{on_report, nullptr};
        int work = 0;
        tp_status status =
            tp_qos_monitor_poll(monitor_, &Trampoline<F>::call, &trampoline, &work);
        if (trampoline.error) {
            std::rethrow_exception(trampoline.error);
        }
        check(status, "tp_qos_monitor_poll");
        return work;
    }

  private:
    template <typename F> struct Trampoline {
        F &on_report;
        std::exception_ptr error;

        static void call(const tp_qos_report *report, void *user) noexcept {
            auto *self = static_cast<Trampoline *>(user);
            if (self->error) {
                return;
            }
            try {
                self->on_report(*report);
            } catch (...) {
                self->error = std::current_exception();
            }
        }
    };

    tp_qos_monitor *monitor_ = nullptr;
};

} // namespace tensorpool

#endif // TENSORPOOL_HPP
