/*
 * Helpers shared by the C and C++ examples (producer.c, consumer.c, consumer.cpp):
 * command-line values, the test pattern, a monotonic clock, an idle backoff and
 * SIGINT/SIGTERM handling. Not part of the library: examples only.
 *
 * The pattern is the Rust examples' one: byte i of the frame with sequence s is
 * (s + i) mod 251. A table holding 0, 1, ..., 250, 0, 1, ... of length len + 251 turns
 * filling and checking a frame into one memcpy / memcmp from offset s mod 251.
 */
#ifndef TENSORPOOL_EXAMPLE_COMMON_H
#define TENSORPOOL_EXAMPLE_COMMON_H

/* POSIX clocks, nanosleep and sigaction under -std=c11 (include this header first). */
#if !defined(_POSIX_C_SOURCE) && !defined(__cplusplus)
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tensorpool.h"

#define EXAMPLE_PATTERN_PERIOD 251u
/* Longest single wait for a media driver; the examples retry it until --timeout-s, so a
 * signal is noticed within it. */
#define EXAMPLE_CONNECT_ATTEMPT_MS 1000
#define EXAMPLE_MAX_BASE_DIRS 8

/* Set by SIGINT/SIGTERM; the examples stop, print their summary and exit 130. */
static volatile sig_atomic_t example_interrupted = 0;

static inline void example_on_signal(int signo) {
    (void)signo;
    example_interrupted = 1;
}

static inline void example_install_signals(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = example_on_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
}

static inline double example_now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void example_sleep_ns(long ns) {
    struct timespec ts;
    ts.tv_sec = ns / 1000000000L;
    ts.tv_nsec = ns % 1000000000L;
    nanosleep(&ts, NULL);
}

/* Idle strategy, as the Rust examples' (Agrona's backoff): while there is work, none;
 * after a cycle without work, 10 spins, then 5 yields, then sleeps of 1 us doubling to
 * 1 ms. Sleeping at once would cost far more than 1 us (the kernel's timer slack is
 * 50 us), long enough for a fast producer to lap a small ring. */
#define EXAMPLE_IDLE_SPINS 10
#define EXAMPLE_IDLE_YIELDS 5

typedef struct example_backoff {
    int idle_cycles;
    long park_ns;
} example_backoff;

static inline void example_idle_reset(example_backoff *idle) {
    idle->idle_cycles = 0;
    idle->park_ns = 0;
}

static inline void example_idle(example_backoff *idle, int work) {
    if (work > 0) {
        example_idle_reset(idle);
        return;
    }
    idle->idle_cycles++;
    if (idle->idle_cycles <= EXAMPLE_IDLE_SPINS) {
        return;
    }
    if (idle->idle_cycles <= EXAMPLE_IDLE_SPINS + EXAMPLE_IDLE_YIELDS) {
        sched_yield();
        return;
    }
    idle->park_ns = idle->park_ns == 0 ? 1000 : idle->park_ns * 2;
    if (idle->park_ns > 1000000) {
        idle->park_ns = 1000000;
    }
    example_sleep_ns(idle->park_ns);
}

/* The pattern table for payloads up to len bytes; NULL if out of memory. */
static inline uint8_t *example_pattern_table(size_t len) {
    size_t size = len + EXAMPLE_PATTERN_PERIOD;
    uint8_t *table = (uint8_t *)malloc(size);
    if (table != NULL) {
        for (size_t i = 0; i < size; i++) {
            table[i] = (uint8_t)(i % EXAMPLE_PATTERN_PERIOD);
        }
    }
    return table;
}

/* The expected bytes of frame seq (len bytes, from a table of at least len + 251). */
static inline const uint8_t *example_pattern(const uint8_t *table, uint64_t seq) {
    return table + (size_t)(seq % EXAMPLE_PATTERN_PERIOD);
}

/* Prints the last error of a failed call and returns status. */
static inline tp_status example_report(const char *role, const char *what, tp_status status) {
    fprintf(stderr, "%s: %s: %s: %s\n", role, what, tp_status_name(status),
            tp_last_error_message());
    return status;
}

/* Prints why connecting failed after retrying for waited_s seconds. */
static inline void example_report_connect(const char *role, tp_status status, double waited_s) {
    fprintf(stderr, "%s: gave up connecting after %.1f s of attempts (each waits %d ms): %s: %s\n",
            role, waited_s, EXAMPLE_CONNECT_ATTEMPT_MS, tp_status_name(status),
            tp_last_error_message());
}

/* Parses an unsigned decimal option value; exits with a message on bad input. */
static inline uint64_t example_parse_u64(const char *role, const char *flag, const char *text) {
    char *end = NULL;
    errno = 0;
    unsigned long long value = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-') {
        fprintf(stderr, "%s: %s %s: not an unsigned integer\n", role, flag, text);
        exit(2);
    }
    return (uint64_t)value;
}

static inline uint32_t example_parse_u32(const char *role, const char *flag, const char *text) {
    uint64_t value = example_parse_u64(role, flag, text);
    if (value > UINT32_MAX) {
        fprintf(stderr, "%s: %s %s: larger than 4294967295\n", role, flag, text);
        exit(2);
    }
    return (uint32_t)value;
}

static inline double example_parse_f64(const char *role, const char *flag, const char *text) {
    char *end = NULL;
    errno = 0;
    double value = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(value >= 0.0)) {
        fprintf(stderr, "%s: %s %s: not a non-negative number\n", role, flag, text);
        exit(2);
    }
    return value;
}

/* The options every example shares: where the driver is and how to reach it. */
typedef struct example_client_options {
    const char *aeron_dir;
    uint32_t stream_id;
    const char *channel;
    uint32_t control_stream_id;
    uint32_t announce_stream_id;
    uint32_t descriptor_stream_id;
    uint32_t qos_stream_id;
    const char *allowed_base_dirs[EXAMPLE_MAX_BASE_DIRS];
    size_t allowed_base_dir_count;
    uint32_t client_id;
    uint64_t keepalive_ms;
} example_client_options;

static inline void example_client_defaults(example_client_options *o) {
    memset(o, 0, sizeof *o);
    o->stream_id = 10000;
    o->channel = "aeron:ipc?term-length=4m";
    o->control_stream_id = 1000;
    o->announce_stream_id = 1001;
    o->descriptor_stream_id = 1100;
    o->qos_stream_id = 1200;
    o->keepalive_ms = 0; /* 0: the lease the driver grants sets the pace */
}

/*
 * Consumes one shared option at argv[*i] (and its value); returns false if the option
 * is not a shared one. id_flag names the client id option ("--client-id" or
 * "--consumer-id").
 */
static inline bool example_client_option(const char *role, const char *id_flag,
                                  example_client_options *o, int argc, char **argv, int *i) {
    const char *flag = argv[*i];
    static const char *const with_value[] = {
        "--aeron-dir", "--stream-id", "--channel", "--control-stream-id",
        "--announce-stream-id", "--descriptor-stream-id", "--qos-stream-id",
        "--allowed-base-dir", "--keepalive-ms"};
    bool known = strcmp(flag, id_flag) == 0;
    for (size_t k = 0; !known && k < sizeof with_value / sizeof with_value[0]; k++) {
        known = strcmp(flag, with_value[k]) == 0;
    }
    if (!known) {
        return false;
    }
    if (*i + 1 >= argc) {
        fprintf(stderr, "%s: %s needs a value\n", role, flag);
        exit(2);
    }
    const char *value = argv[++*i];
    if (strcmp(flag, "--aeron-dir") == 0) {
        o->aeron_dir = value;
    } else if (strcmp(flag, "--stream-id") == 0) {
        o->stream_id = example_parse_u32(role, flag, value);
    } else if (strcmp(flag, "--channel") == 0) {
        o->channel = value;
    } else if (strcmp(flag, "--control-stream-id") == 0) {
        o->control_stream_id = example_parse_u32(role, flag, value);
    } else if (strcmp(flag, "--announce-stream-id") == 0) {
        o->announce_stream_id = example_parse_u32(role, flag, value);
    } else if (strcmp(flag, "--descriptor-stream-id") == 0) {
        o->descriptor_stream_id = example_parse_u32(role, flag, value);
    } else if (strcmp(flag, "--qos-stream-id") == 0) {
        o->qos_stream_id = example_parse_u32(role, flag, value);
    } else if (strcmp(flag, "--allowed-base-dir") == 0) {
        if (o->allowed_base_dir_count == EXAMPLE_MAX_BASE_DIRS) {
            fprintf(stderr, "%s: at most %d --allowed-base-dir\n", role, EXAMPLE_MAX_BASE_DIRS);
            exit(2);
        }
        o->allowed_base_dirs[o->allowed_base_dir_count++] = value;
    } else if (strcmp(flag, "--keepalive-ms") == 0) {
        o->keepalive_ms = example_parse_u64(role, flag, value);
    } else {
        o->client_id = example_parse_u32(role, flag, value);
    }
    return true;
}

/* Builds a tp_config from the shared options; NULL (with a message) on failure. */
static inline tp_config *example_config(const char *role, const example_client_options *o) {
    tp_config *config = NULL;
    tp_status status = tp_config_create(&config);
    if (status != TP_OK) {
        example_report(role, "tp_config_create", status);
        return NULL;
    }
    /* Without --aeron-dir the library uses Aeron's default: AERON_DIR, else
     * /dev/shm/aeron-<user> (the user from USER, else the password database), where a
     * driver without driver.aeron_dir runs. */
    if ((o->aeron_dir != NULL && (status = tp_config_set_aeron_dir(config, o->aeron_dir)) != TP_OK) ||
        (status = tp_config_set_channel(config, o->channel)) != TP_OK ||
        (status = tp_config_set_stream_ids(config, o->control_stream_id, o->announce_stream_id,
                                           o->descriptor_stream_id, o->qos_stream_id)) != TP_OK ||
        (status = tp_config_set_client_id(config, o->client_id)) != TP_OK ||
        (o->keepalive_ms != 0 &&
         (status = tp_config_set_keepalive_interval_ms(config, o->keepalive_ms)) != TP_OK) ||
        (status = tp_config_set_connect_timeout_ms(config, EXAMPLE_CONNECT_ATTEMPT_MS)) != TP_OK) {
        example_report(role, "configuring the client", status);
        tp_config_close(config);
        return NULL;
    }
    for (size_t k = 0; k < o->allowed_base_dir_count; k++) {
        status = k == 0 ? tp_config_set_allowed_base_dir(config, o->allowed_base_dirs[k])
                        : tp_config_add_allowed_base_dir(config, o->allowed_base_dirs[k]);
        if (status != TP_OK) {
            example_report(role, "--allowed-base-dir", status);
            tp_config_close(config);
            return NULL;
        }
    }
    return config;
}

/* Checks that the library speaks the ABI this program was compiled against. */
static inline bool example_check_abi(const char *role) {
    tp_version_info version;
    memset(&version, 0, sizeof version);
    if (tp_version(&version) != TP_OK || version.abi_version != TP_ABI_VERSION) {
        fprintf(stderr, "%s: libtensorpool ABI %u, this program needs %u\n", role,
                (unsigned)version.abi_version, (unsigned)TP_ABI_VERSION);
        return false;
    }
    return true;
}

#endif /* TENSORPOOL_EXAMPLE_COMMON_H */
