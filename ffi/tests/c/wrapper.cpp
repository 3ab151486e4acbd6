// The C++ wrapper's contract, without a driver: errors are exceptions carrying the
// status and the library's message, handles are move-only RAII objects, and the
// version and tensor helpers return the library's values. Prints one line per failed
// check; exits 0 only if every check held.
#include <cstdio>
#include <string>
#include <type_traits>
#include <utility>

#include "tensorpool.hpp"

static int failures = 0;

#define CHECK(condition)                                                                   \
    do {                                                                                   \
        if (!(condition)) {                                                                \
            failures++;                                                                    \
            std::printf("FAILED line %d: %s\n", __LINE__, #condition);                     \
        }                                                                                  \
    } while (0)

static_assert(!std::is_copy_constructible_v<tensorpool::Config>, "Config is move-only");
static_assert(!std::is_copy_constructible_v<tensorpool::Producer>, "Producer is move-only");
static_assert(!std::is_copy_constructible_v<tensorpool::Consumer>, "Consumer is move-only");
static_assert(std::is_nothrow_move_constructible_v<tensorpool::Consumer>, "movable");
static_assert(!std::is_copy_constructible_v<tensorpool::QosMonitor>, "QosMonitor is move-only");
static_assert(std::is_nothrow_move_constructible_v<tensorpool::QosMonitor>, "movable");
static_assert(!std::is_copy_constructible_v<tensorpool::Fill>, "Fill is move-only");

int main() {
    CHECK(tensorpool::version().abi_version == TP_ABI_VERSION);
    tp_tensor tensor = tensorpool::bytes_tensor(100);
    CHECK(tensor.dtype == TP_DTYPE_UINT8 && tensor.ndims == 1 && tensor.dims[0] == 100);

    tensorpool::Config config;
    tp_status status = TP_OK;
    std::string message;
    try {
        config.keepalive_interval(std::chrono::milliseconds(0));
    } catch (const tensorpool::Error &error) {
        status = error.status();
        message = error.what();
    }
    CHECK(status == TP_ERROR_INVALID_ARGUMENT);
    CHECK(message.find("TP_ERROR_INVALID_ARGUMENT") != std::string::npos);
    CHECK(message.find("keepalive") != std::string::npos);

    // Nothing listens in this directory: creating a consumer fails with TP_ERROR_CONNECT.
    config.aeron_dir("/nonexistent/tensorpool-wrapper-test").connect_timeout(
        std::chrono::milliseconds(0));
    status = TP_OK;
    try {
        tensorpool::Consumer consumer(config, 10000);
    } catch (const tensorpool::Error &error) {
        status = error.status();
    }
    CHECK(status == TP_ERROR_CONNECT);
    status = TP_OK;
    int reports = 0;
    try {
        tensorpool::QosMonitor monitor(config);
        monitor.poll([&reports](const tp_qos_report &) { reports++; });
    } catch (const tensorpool::Error &error) {
        status = error.status();
    }
    CHECK(status == TP_ERROR_CONNECT && reports == 0);

    // Metadata settings are checked like every other.
    for (int bad = 0; bad < 2; bad++) {
        status = TP_OK;
        try {
            if (bad == 0) {
                config.metadata_interval(std::chrono::milliseconds(0));
            } else {
                config.metadata_stream("udp://nowhere", 1300);
            }
        } catch (const tensorpool::Error &error) {
            status = error.status();
        }
        CHECK(status == TP_ERROR_INVALID_ARGUMENT);
    }
    config.metadata_stream("aeron:ipc", 1300).metadata_interval(std::chrono::milliseconds(250));
    tensorpool::Metadata metadata{0, "cam", "u8", {{"serial", "text/plain", {'S', 'N'}}}};
    CHECK(metadata.attributes.size() == 1 && metadata.attributes[0].value.size() == 2);
    static_assert(std::is_same_v<decltype(std::declval<const tensorpool::Frame &>().meta_status()),
                                 tp_meta_status>,
                  "a frame's metadata status is the C enumeration");

    tensorpool::Config moved = std::move(config);
    moved.client_id(7).rate_limit(20).progress(true, 250, 65536).rate_limit(0).progress(false);
    std::printf("wrapper: %d failed\n", failures);
    return failures == 0 ? 0 : 1;
}
