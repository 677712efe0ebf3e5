/* tools_promcheck.c: a strict checker of the Prometheus text exposition, used where promtool is missing and beside it. */
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools_promcheck.h"

#define MAX_FAMILIES 256
#define MAX_SERIES 8192

typedef struct {
    char name[160];
    char type[16];
    bool help;
    bool closed; /* samples seen and another family started since */
} family_t;

typedef struct {
    char key[256];     /* histogram: name + labels without le */
    double last_le;
    double last_count;
    bool have_inf;
    double inf_count;
    bool have_sum, have_count;
    double count;
} hist_t;

#include <stdarg.h>

static bool fail(char *why, size_t n, int line, const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static bool fail(char *why, size_t n, int line, const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(why, n, "line %d: %s", line, msg);
    return false;
}

static bool valid_metric_name(const char *s, size_t len)
{
    if (len == 0 || !(isalpha((unsigned char)s[0]) || s[0] == '_' || s[0] == ':'))
        return false;
    for (size_t i = 1; i < len; i++)
        if (!(isalnum((unsigned char)s[i]) || s[i] == '_' || s[i] == ':'))
            return false;
    return true;
}

static bool parse_value(const char *s, double *v)
{
    if (strcmp(s, "+Inf") == 0) { *v = INFINITY; return true; }
    if (strcmp(s, "-Inf") == 0) { *v = -INFINITY; return true; }
    if (strcmp(s, "NaN") == 0) { *v = NAN; return true; }
    char *end;
    *v = strtod(s, &end);
    return end != s && *end == '\0' && !isspace((unsigned char)s[0]);
}

static family_t *find_family(family_t *f, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (strcmp(f[i].name, name) == 0)
            return &f[i];
    return NULL;
}

static hist_t *find_hist(hist_t *h, int *n, const char *key)
{
    for (int i = 0; i < *n; i++)
        if (strcmp(h[i].key, key) == 0)
            return &h[i];
    if (*n >= MAX_SERIES / 8)
        return NULL;
    hist_t *x = &h[(*n)++];
    memset(x, 0, sizeof *x);
    snprintf(x->key, sizeof x->key, "%s", key);
    x->last_le = -INFINITY;
    return x;
}

bool prom_check(const char *text, char *why, size_t why_len)
{
    static family_t fam[MAX_FAMILIES];
    static char seen[MAX_SERIES][200];
    static hist_t hist[MAX_SERIES / 8];
    int nfam = 0, nseen = 0, nhist = 0, lineno = 0;
    family_t *current = NULL;
    const char *p = text;
    if (*p == '\0')
        return fail(why, why_len, 0, "%s", "empty exposition");
    while (*p) {
        const char *eol = strchr(p, '\n');
        if (eol == NULL)
            return fail(why, why_len, lineno + 1, "%s", "last line has no newline");
        char line[1024];
        size_t len = (size_t)(eol - p);
        if (len >= sizeof line)
            return fail(why, why_len, lineno + 1, "%s", "line too long");
        memcpy(line, p, len);
        line[len] = '\0';
        p = eol + 1;
        lineno++;
        if (len == 0)
            return fail(why, why_len, lineno, "%s", "empty line");
        if (line[0] == '#') {
            char kind[8], name[160];
            int off = 0;
            if (sscanf(line, "# %7s %159s %n", kind, name, &off) < 2)
                return fail(why, why_len, lineno, "bad comment line '%.200s'", line);
            if (!valid_metric_name(name, strlen(name)))
                return fail(why, why_len, lineno, "bad metric name '%s'", name);
            family_t *f = find_family(fam, nfam, name);
            if (f == NULL) {
                if (nfam == MAX_FAMILIES)
                    return fail(why, why_len, lineno, "%s", "too many families");
                f = &fam[nfam++];
                memset(f, 0, sizeof *f);
                snprintf(f->name, sizeof f->name, "%s", name);
            }
            if (f->closed)
                return fail(why, why_len, lineno, "family %s declared again after its samples", name);
            if (current != NULL && current != f)
                current->closed = true;
            current = f;
            if (strcmp(kind, "HELP") == 0) {
                if (f->help)
                    return fail(why, why_len, lineno, "second HELP for %s", name);
                if (off == 0 || line[off] == '\0')
                    return fail(why, why_len, lineno, "empty HELP for %s", name);
                f->help = true;
            } else if (strcmp(kind, "TYPE") == 0) {
                const char *t = line + off;
                if (f->type[0])
                    return fail(why, why_len, lineno, "second TYPE for %s", name);
                if (strcmp(t, "counter") && strcmp(t, "gauge") && strcmp(t, "histogram") && strcmp(t, "summary") &&
                    strcmp(t, "untyped"))
                    return fail(why, why_len, lineno, "unknown type '%s'", t);
                snprintf(f->type, sizeof f->type, "%s", t);
                if (strcmp(t, "counter") == 0 && (strlen(name) < 6 || strcmp(name + strlen(name) - 6, "_total")))
                    return fail(why, why_len, lineno, "counter %s does not end in _total", name);
                if (strcmp(t, "counter") != 0 && strlen(name) > 6 && !strcmp(name + strlen(name) - 6, "_total"))
                    return fail(why, why_len, lineno, "non-counter %s ends in _total", name);
            } else {
                return fail(why, why_len, lineno, "unknown comment kind '%s'", kind);
            }
            continue;
        }
        /* A sample: name[{labels}] value */
        size_t nlen = strcspn(line, "{ ");
        if (!valid_metric_name(line, nlen))
            return fail(why, why_len, lineno, "bad sample name in '%.200s'", line);
        char name[160];
        snprintf(name, sizeof name, "%.*s", (int)nlen, line);
        const char *q = line + nlen;
        char labels_no_le[256] = "";
        size_t lnl = 0;
        double le = NAN;
        bool has_le = false;
        if (*q == '{') {
            q++;
            bool first = true;
            while (*q != '}') {
                if (!first) {
                    if (*q != ',')
                        return fail(why, why_len, lineno, "expected ',' in '%.200s'", line);
                    q++;
                }
                first = false;
                size_t ln = 0;
                while (isalnum((unsigned char)q[ln]) || q[ln] == '_')
                    ln++;
                if (ln == 0 || isdigit((unsigned char)q[0]) || q[ln] != '=' || q[ln + 1] != '"')
                    return fail(why, why_len, lineno, "bad label in '%.200s'", line);
                char lname[64];
                snprintf(lname, sizeof lname, "%.*s", (int)ln, q);
                if (strncmp(lname, "__", 2) == 0)
                    return fail(why, why_len, lineno, "reserved label name in '%.200s'", line);
                q += ln + 2;
                char value[256];
                size_t vl = 0;
                while (*q != '"') {
                    if (*q == '\0')
                        return fail(why, why_len, lineno, "unterminated label value in '%.200s'", line);
                    if (*q == '\\') {
                        if (q[1] != '\\' && q[1] != '"' && q[1] != 'n')
                            return fail(why, why_len, lineno, "bad escape in '%.200s'", line);
                        if (vl < sizeof value - 1)
                            value[vl++] = q[1] == 'n' ? '\n' : q[1];
                        q += 2;
                        continue;
                    }
                    if (vl < sizeof value - 1)
                        value[vl++] = *q;
                    q++;
                }
                value[vl] = '\0';
                q++;
                if (strcmp(lname, "le") == 0) {
                    if (!parse_value(value, &le))
                        return fail(why, why_len, lineno, "bad le value in '%.200s'", line);
                    has_le = true;
                } else {
                    lnl += (size_t)snprintf(labels_no_le + lnl, sizeof labels_no_le - lnl, "%s=%s,", lname, value);
                    if (lnl >= sizeof labels_no_le)
                        return fail(why, why_len, lineno, "%s", "labels too long");
                }
            }
            q++;
        }
        if (*q != ' ')
            return fail(why, why_len, lineno, "expected one space before the value in '%.200s'", line);
        q++;
        double v;
        if (!parse_value(q, &v))
            return fail(why, why_len, lineno, "bad value (or a timestamp) in '%.200s'", line);
        /* The series must belong to the current family. */
        family_t *f = find_family(fam, nfam, name);
        const char *suffix = NULL;
        if (f == NULL) {
            static const char *const sfx[] = {"_bucket", "_sum", "_count"};
            for (int k = 0; k < 3 && f == NULL; k++) {
                size_t sl = strlen(sfx[k]);
                if (nlen > sl && strcmp(name + nlen - sl, sfx[k]) == 0) {
                    char base[160];
                    snprintf(base, sizeof base, "%.*s", (int)(nlen - sl), name);
                    f = find_family(fam, nfam, base);
                    if (f != NULL)
                        suffix = sfx[k];
                }
            }
        }
        if (f == NULL || !f->type[0])
            return fail(why, why_len, lineno, "sample %s has no TYPE before it", name);
        if (f != current)
            return fail(why, why_len, lineno, "sample %s is not next to the rest of its family", name);
        if (strcmp(f->type, "histogram") == 0) {
            if (suffix == NULL)
                return fail(why, why_len, lineno, "histogram sample %s without _bucket/_sum/_count", name);
            char key[256];
            snprintf(key, sizeof key, "%s|%s", f->name, labels_no_le);
            hist_t *h = find_hist(hist, &nhist, key);
            if (h == NULL)
                return fail(why, why_len, lineno, "%s", "too many histograms");
            if (strcmp(suffix, "_bucket") == 0) {
                if (!has_le)
                    return fail(why, why_len, lineno, "bucket without le: '%.200s'", line);
                if (h->have_inf || !(le > h->last_le))
                    return fail(why, why_len, lineno, "le bounds not ascending: '%.200s'", line);
                if (v < h->last_count)
                    return fail(why, why_len, lineno, "bucket counts not cumulative: '%.200s'", line);
                h->last_le = le;
                h->last_count = v;
                if (isinf(le)) {
                    h->have_inf = true;
                    h->inf_count = v;
                }
            } else if (has_le) {
                return fail(why, why_len, lineno, "le on a non-bucket sample: '%.200s'", line);
            } else if (strcmp(suffix, "_sum") == 0) {
                h->have_sum = true;
            } else {
                h->have_count = true;
                h->count = v;
            }
        } else if (suffix != NULL || has_le) {
            return fail(why, why_len, lineno, "unexpected sample shape '%.200s'", line);
        } else if (strcmp(f->type, "counter") == 0 && (v < 0 || isnan(v))) {
            return fail(why, why_len, lineno, "negative counter '%.200s'", line);
        }
        /* No series twice. */
        char series[200];
        snprintf(series, sizeof series, "%.*s", (int)(q - line - 1), line);
        for (int i = 0; i < nseen; i++)
            if (strcmp(seen[i], series) == 0)
                return fail(why, why_len, lineno, "duplicate series '%s'", series);
        if (nseen < MAX_SERIES)
            snprintf(seen[nseen++], sizeof seen[0], "%s", series);
    }
    for (int i = 0; i < nfam; i++) {
        if (!fam[i].type[0] || !fam[i].help)
            return fail(why, why_len, lineno, "family %s lacks a TYPE or a HELP", fam[i].name);
    }
    for (int i = 0; i < nhist; i++) {
        if (!hist[i].have_inf || !hist[i].have_sum || !hist[i].have_count)
            return fail(why, why_len, lineno, "histogram %s lacks +Inf, _sum or _count", hist[i].key);
        if (hist[i].inf_count != hist[i].count)
            return fail(why, why_len, lineno, "histogram %s: +Inf bucket differs from _count", hist[i].key);
    }
    return true;
}

const char *prom_value(const char *text, const char *series)
{
    static char value[64];
    size_t sl = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL) {
        if (strncmp(p, series, sl) == 0 && p[sl] == ' ') {
            size_t vl = strcspn(p + sl + 1, "\n");
            snprintf(value, sizeof value, "%.*s", (int)vl, p + sl + 1);
            return value;
        }
    }
    return NULL;
}
