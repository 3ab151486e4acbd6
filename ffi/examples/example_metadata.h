/*
 * Metadata helpers of the C examples (Wire Spec §10.3): the producer's --meta-* options
 * turned into tp_producer_set_metadata, and the consumer's copy of the metadata it holds
 * (the library's pointers are valid only until the next tp_consumer_do_work).
 */
#ifndef TENSORPOOL_EXAMPLE_METADATA_H
#define TENSORPOOL_EXAMPLE_METADATA_H

#include "example_common.h"

#define EXAMPLE_MAX_META_ATTRS 8
#define EXAMPLE_META_TEXT 4096

/* The producer's --meta-* options. */
typedef struct example_meta_options {
    const char *name; /* NULL: no metadata */
    const char *summary;
    const char *attrs[EXAMPLE_MAX_META_ATTRS]; /* "KEY=VALUE" */
    size_t attr_count;
    uint64_t change_at; /* UINT64_MAX: never */
    uint64_t interval_ms;
} example_meta_options;

static inline void example_meta_defaults(example_meta_options *m) {
    memset(m, 0, sizeof *m);
    m->summary = "";
    m->change_at = UINT64_MAX;
    m->interval_ms = 1000;
}

/* Parses one --meta-* option with its value; false if `flag` is not one. */
static inline bool example_meta_option(const char *role, const char *flag, const char *value,
                                       example_meta_options *m) {
    if (strcmp(flag, "--meta-name") == 0) {
        m->name = value;
    } else if (strcmp(flag, "--meta-summary") == 0) {
        m->summary = value;
    } else if (strcmp(flag, "--meta-attr") == 0) {
        if (m->attr_count == EXAMPLE_MAX_META_ATTRS || strchr(value, '=') == NULL) {
            fprintf(stderr, "%s: --meta-attr takes KEY=VALUE, at most %d times\n", role,
                    EXAMPLE_MAX_META_ATTRS);
            exit(2);
        }
        m->attrs[m->attr_count++] = value;
    } else if (strcmp(flag, "--meta-change-at") == 0) {
        m->change_at = example_parse_u64(role, flag, value);
    } else if (strcmp(flag, "--meta-interval-ms") == 0) {
        m->interval_ms = example_parse_u64(role, flag, value);
    } else {
        return false;
    }
    return true;
}

/* Sets the producer's metadata of --meta-* with attribute phase=`phase` (text/plain);
 * does nothing without --meta-name. */
static inline bool example_set_metadata(const char *role, tp_producer *producer,
                                        const example_meta_options *m, unsigned phase) {
    if (m->name == NULL) {
        return true;
    }
    static const char text_plain[] = "text/plain";
    tp_attribute attrs[EXAMPLE_MAX_META_ATTRS + 1];
    size_t n = 0;
    for (size_t k = 0; k < m->attr_count; k++, n++) {
        const char *eq = strchr(m->attrs[k], '=');
        attrs[n].key = m->attrs[k];
        attrs[n].key_len = (size_t)(eq - m->attrs[k]);
        attrs[n].format = text_plain;
        attrs[n].format_len = sizeof text_plain - 1;
        attrs[n].value = (const uint8_t *)(eq + 1);
        attrs[n].value_len = strlen(eq + 1);
    }
    char phase_text[16];
    snprintf(phase_text, sizeof phase_text, "%u", phase);
    attrs[n].key = "phase";
    attrs[n].key_len = 5;
    attrs[n].format = text_plain;
    attrs[n].format_len = sizeof text_plain - 1;
    attrs[n].value = (const uint8_t *)phase_text;
    attrs[n].value_len = strlen(phase_text);
    n++;
    uint32_t version = 0;
    tp_status status = tp_producer_set_metadata(producer, m->name, m->summary, attrs, n, &version);
    if (status != TP_OK) {
        example_report(role, "--meta-*", status);
        return false;
    }
    fprintf(stderr, "%s: metadata version %u set (phase %u)\n", role, (unsigned)version, phase);
    return true;
}

/* A consumer's copy of the metadata it holds, for the final JSON line. */
typedef struct example_meta_copy {
    uint32_t meta_version;
    uint64_t changes;
    char name[EXAMPLE_META_TEXT];
    char summary[EXAMPLE_META_TEXT];
    char attrs[EXAMPLE_META_TEXT]; /* "k=v;k2=<N bytes>" */
} example_meta_copy;

/* Appends `len` bytes of `text` to the NUL-terminated `buf` of `cap` bytes, truncating. */
static inline void example_append(char *buf, size_t cap, const char *text, size_t len) {
    size_t used = strlen(buf);
    size_t room = cap - 1 - used;
    size_t n = len < room ? len : room;
    memcpy(buf + used, text, n);
    buf[used + n] = '\0';
}

/* Copies the consumer's metadata (after TP_CONSUMER_EVENT_METADATA_CHANGED). */
static inline bool example_copy_metadata(const char *role, tp_consumer *consumer,
                                         example_meta_copy *copy) {
    tp_metadata_info info;
    tp_status status = tp_consumer_get_metadata(consumer, &info);
    if (status != TP_OK) {
        example_report(role, "metadata", status);
        return false;
    }
    copy->meta_version = info.meta_version;
    copy->name[0] = copy->summary[0] = copy->attrs[0] = '\0';
    example_append(copy->name, sizeof copy->name, info.name, info.name_len);
    example_append(copy->summary, sizeof copy->summary, info.summary, info.summary_len);
    for (size_t k = 0; k < info.attribute_count; k++) {
        tp_attribute a;
        if ((status = tp_consumer_get_metadata_attribute(consumer, k, &a)) != TP_OK) {
            example_report(role, "metadata attribute", status);
            return false;
        }
        if (k > 0) {
            example_append(copy->attrs, sizeof copy->attrs, ";", 1);
        }
        example_append(copy->attrs, sizeof copy->attrs, a.key, a.key_len);
        example_append(copy->attrs, sizeof copy->attrs, "=", 1);
        if (a.format_len == 10 && memcmp(a.format, "text/plain", 10) == 0) {
            example_append(copy->attrs, sizeof copy->attrs, (const char *)a.value, a.value_len);
        } else {
            char size[32];
            int n = snprintf(size, sizeof size, "<%zu bytes>", a.value_len);
            example_append(copy->attrs, sizeof copy->attrs, size, (size_t)n);
        }
    }
    fprintf(stderr, "%s: metadata version %u: name \"%s\", summary \"%s\", attributes [%s]\n",
            role, (unsigned)copy->meta_version, copy->name, copy->summary, copy->attrs);
    return true;
}

/* Prints `text` as a JSON string (metadata text is printable ASCII). */
static inline void example_print_json_string(const char *text) {
    putchar('"');
    for (const char *p = text; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\') {
            putchar('\\');
        }
        putchar(*p);
    }
    putchar('"');
}

#endif
