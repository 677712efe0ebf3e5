/* listen.c: parsing of listen addresses, shared by the configuration and the /metrics endpoint. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "listen.h"

bool msup_listen_parse(const char *listen, bool strict, char *host, size_t hn, char *port, size_t pn,
                       mongosup_error_t *err)
{
    const char *colon;
    if (listen[0] == '[') {
        const char *close = strchr(listen, ']');
        if (close == NULL || close[1] != ':')
            return msup_fail(err, MONGOSUP_E_CONFIG, "\"%s\": expected [IPv6]:PORT", listen);
        snprintf(host, hn, "%.*s", (int)(close - listen - 1), listen + 1);
        colon = close + 1;
    } else if ((colon = strrchr(listen, ':')) != NULL) {
        if (memchr(listen, ':', (size_t)(colon - listen)) != NULL)
            return msup_fail(err, MONGOSUP_E_CONFIG, "\"%s\": write IPv6 addresses as [ADDR]:PORT", listen);
        snprintf(host, hn, "%.*s", (int)(colon - listen), listen);
    } else {
        host[0] = '\0';
        colon = listen - 1;
    }
    if (host[0] == '\0') {
        if (strict)
            return msup_fail(err, MONGOSUP_E_CONFIG, "\"%s\" is not HOST:PORT (e.g. \"127.0.0.1:9216\")", listen);
        snprintf(host, hn, "127.0.0.1");
    }
    const char *p = colon + 1;
    char *end;
    long v = strtol(p, &end, 10);
    if (*p == '\0' || *end != '\0' || v < (strict ? 1 : 0) || v > 65535)
        return msup_fail(err, MONGOSUP_E_CONFIG, "\"%s\" is not HOST:PORT (e.g. \"127.0.0.1:9216\"): bad port '%s'",
                         listen, p);
    snprintf(port, pn, "%ld", v);
    return true;
}
