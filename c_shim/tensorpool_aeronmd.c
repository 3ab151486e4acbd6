/*
 * The C side of libtensorpool_aeronmd.so: the name-resolver hook a stock Aeron C media
 * driver (aeronmd) calls, wrapping Aeron's default resolver and adding the tensorpool SHM
 * driver's duty cycle to it (docs/DESIGN.md, "aeronmd plugin").
 *
 * The media driver loads the library named by AERON_DRIVER_DYNAMIC_LIBRARIES and looks the
 * supplier named by AERON_NAME_RESOLVER_SUPPLIER up with dlsym. It calls the supplier once
 * while it initialises (a failure stops it from starting), then the resolver's do_work on
 * every cycle of its native-resource agent, and close when it stops.
 *
 * Everything this file needs from the host it takes from the host, by dlsym(RTLD_DEFAULT):
 * the library carries a private, hidden copy of Aeron's client for the Rust side, and the
 * default resolver, the context accessors and the error slot must be the host's own.
 */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct sockaddr_storage;

/* The hook's layout: aeron_name_resolver_t of aeron_name_resolver.h (Aeron 1.54). Declared
 * here rather than included so the plugin builds without Aeron's driver headers; the host's
 * version is checked at load time (tp_check_host_version) so the layout cannot drift. */
typedef struct tp_name_resolver_stct tp_name_resolver_t;
typedef int (*tp_resolve_func_t)(
    tp_name_resolver_t *resolver, const char *name, const char *uri_param_name, bool is_re_resolution,
    struct sockaddr_storage *address);
typedef int (*tp_lookup_func_t)(
    tp_name_resolver_t *resolver, const char *name, const char *uri_param_name, bool is_re_lookup,
    const char **resolved_name);
typedef int (*tp_start_func_t)(tp_name_resolver_t *resolver);
typedef int (*tp_do_work_func_t)(tp_name_resolver_t *resolver, int64_t now_ms);
typedef int (*tp_close_func_t)(tp_name_resolver_t *resolver);

struct tp_name_resolver_stct
{
    const char *name;
    tp_lookup_func_t lookup_func;
    tp_resolve_func_t resolve_func;
    tp_start_func_t start_func;
    tp_do_work_func_t do_work_func;
    tp_close_func_t close_func;
    void *state;
};

typedef int (*tp_supplier_func_t)(tp_name_resolver_t *resolver, const char *args, void *context);
typedef const char *(*tp_get_dir_func_t)(void *context);
typedef int (*tp_version_func_t)(void);
typedef void (*tp_err_set_func_t)(
    int errcode, const char *function, const char *filename, int line_number, const char *format, ...);

/* The Rust side, handed over by the exported entry point (see aeronmd-plugin/src/lib.rs). */
typedef struct tp_aeronmd_callbacks_stct
{
    /* Opens the SHM driver for the media driver in aeron_dir; NULL with a message in error. */
    void *(*open)(const char *aeron_dir, char *error, size_t error_len);
    /* One duty cycle; returns the work done. Never blocks. */
    int (*do_work)(void *driver);
    /* Sends ShmDriverShutdown and frees the driver. */
    void (*close)(void *driver);
}
tp_aeronmd_callbacks_t;

typedef struct tp_state_stct
{
    tp_name_resolver_t delegate;
    const tp_aeronmd_callbacks_t *callbacks;
    void *driver;
}
tp_state_t;

#define TP_ERROR_LEN 1024

static int tp_lookup(
    tp_name_resolver_t *resolver, const char *name, const char *uri_param_name, bool is_re_lookup,
    const char **resolved_name)
{
    tp_state_t *state = resolver->state;
    return state->delegate.lookup_func(&state->delegate, name, uri_param_name, is_re_lookup, resolved_name);
}

static int tp_resolve(
    tp_name_resolver_t *resolver, const char *name, const char *uri_param_name, bool is_re_resolution,
    struct sockaddr_storage *address)
{
    tp_state_t *state = resolver->state;
    return state->delegate.resolve_func(&state->delegate, name, uri_param_name, is_re_resolution, address);
}

static int tp_start(tp_name_resolver_t *resolver)
{
    tp_state_t *state = resolver->state;
    return NULL == state->delegate.start_func ? 0 : state->delegate.start_func(&state->delegate);
}

static int tp_do_work(tp_name_resolver_t *resolver, int64_t now_ms)
{
    tp_state_t *state = resolver->state;
    int work = state->delegate.do_work_func(&state->delegate, now_ms);
    return work + state->callbacks->do_work(state->driver);
}

static int tp_close(tp_name_resolver_t *resolver)
{
    tp_state_t *state = resolver->state;
    state->callbacks->close(state->driver);
    int result = NULL == state->delegate.close_func ? 0 : state->delegate.close_func(&state->delegate);
    free(state);
    resolver->state = NULL;
    return result;
}

/* Reports a start-up failure: on stderr, and in the host's error slot, which aeronmd prints
 * when its initialisation fails. */
static int tp_fail(const char *message)
{
    fprintf(stderr, "tensorpool aeronmd plugin: %s\n", message);
    fflush(stderr);
    tp_err_set_func_t err_set;
    *(void **)(&err_set) = dlsym(RTLD_DEFAULT, "aeron_err_set");
    if (NULL != err_set)
    {
        err_set(EINVAL, __func__, __FILE__, __LINE__, "tensorpool aeronmd plugin: %s", message);
    }
    return -1;
}

static void *tp_host_symbol(const char *name, char *error, size_t error_len)
{
    void *symbol = dlsym(RTLD_DEFAULT, name);
    if (NULL == symbol)
    {
        snprintf(error, error_len, "the host media driver does not export %s: is it a dynamically linked aeronmd?", name);
    }
    return symbol;
}

static bool tp_check_host_version(char *error, size_t error_len)
{
    tp_version_func_t major, minor;
    if (NULL == (*(void **)(&major) = tp_host_symbol("aeron_version_major", error, error_len)) ||
        NULL == (*(void **)(&minor) = tp_host_symbol("aeron_version_minor", error, error_len)))
    {
        return false;
    }
    if (TP_AERON_VERSION_MAJOR != major() || TP_AERON_VERSION_MINOR != minor())
    {
        snprintf(
            error, error_len, "built for Aeron %d.%d, but the media driver is Aeron %d.%d",
            TP_AERON_VERSION_MAJOR, TP_AERON_VERSION_MINOR, major(), minor());
        return false;
    }
    return true;
}

int tp_aeronmd_shim_supplier(
    tp_name_resolver_t *resolver, const char *args, void *context, const tp_aeronmd_callbacks_t *callbacks)
{
    char error[TP_ERROR_LEN] = { 0 };
    tp_supplier_func_t default_supplier;
    tp_get_dir_func_t get_dir;

    if (!tp_check_host_version(error, sizeof(error)) ||
        NULL == (*(void **)(&default_supplier) =
            tp_host_symbol("aeron_default_name_resolver_supplier", error, sizeof(error))) ||
        NULL == (*(void **)(&get_dir) = tp_host_symbol("aeron_driver_context_get_dir", error, sizeof(error))))
    {
        return tp_fail(error);
    }

    tp_state_t *state = calloc(1, sizeof(tp_state_t));
    if (NULL == state)
    {
        return tp_fail("out of memory");
    }
    if (default_supplier(&state->delegate, args, context) < 0)
    {
        free(state);
        return tp_fail("the default name resolver failed to initialise");
    }
    state->callbacks = callbacks;
    state->driver = callbacks->open(get_dir(context), error, sizeof(error));
    if (NULL == state->driver)
    {
        if (NULL != state->delegate.close_func)
        {
            state->delegate.close_func(&state->delegate);
        }
        free(state);
        return tp_fail(error);
    }

    resolver->name = "tensorpool";
    resolver->lookup_func = tp_lookup;
    resolver->resolve_func = tp_resolve;
    resolver->start_func = tp_start;
    resolver->do_work_func = tp_do_work;
    resolver->close_func = tp_close;
    resolver->state = state;
    return 0;
}
