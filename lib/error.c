/* error.c: status codes, their names, and the per-thread error message. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

static _Thread_local char errmsg[1024];
static _Thread_local const char *errparam;

const char *llm_strerror(int status)
{
    switch (status) {
    case LLM_OK: return "success";
    case LLM_ERR_IO: return "input/output error";
    case LLM_ERR_FORMAT: return "malformed file or stream";
    case LLM_ERR_NOMEM: return "out of memory";
    case LLM_ERR_INVALID: return "invalid argument";
    case LLM_ERR_RANGE: return "value out of range";
    case LLM_ERR_UTF8: return "invalid UTF-8";
    case LLM_ERR_UNSUPPORTED: return "not supported";
    case LLM_ERR_TOKENIZER: return "tokenizer error";
    case LLM_ERR_NUMERIC: return "non-finite value";
    case LLM_ERR_DEVICE: return "device not available";
    case LLM_ERR_INTERRUPTED: return "interrupted";
    default: return "unknown error";
    }
}

const char *llm_errmsg(void)
{
    return errmsg;
}

const char *llm_errparam(void)
{
    return errparam;
}

/* The message from fmt and ap, naming `param` (NULL: none). */
static int vfail(int status, const char *param, const char *fmt, va_list ap)
{
    vsnprintf(errmsg, sizeof errmsg, fmt, ap);
    errparam = param;
    return status;
}

int llm_fail(int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(status, NULL, fmt, ap);
    va_end(ap);
    return status;
}

int llm_fail_param(int status, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(status, param, fmt, ap);
    va_end(ap);
    return status;
}

int llm_fail_cause(int status, const char *fmt, ...)
{
    char why[sizeof errmsg];
    snprintf(why, sizeof why, "%s", errmsg);
    va_list ap;
    va_start(ap, fmt);
    vfail(status, NULL, fmt, ap);
    va_end(ap);
    /* ": " and the cause, cut to fit. */
    size_t n = strlen(errmsg), w = strlen(why);
    if (n + 2 < sizeof errmsg) {
        memcpy(errmsg + n, ": ", 2);
        n += 2;
        w = w < sizeof errmsg - 1 - n ? w : sizeof errmsg - 1 - n;
        memcpy(errmsg + n, why, w);
        errmsg[n + w] = '\0';
    }
    return status;
}
