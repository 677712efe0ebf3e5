/* config_dump.c: prints the resolved configuration, URIs redacted (mongosupd --check-config). */
#include <stdio.h>

#include "config_int.h"

static void dump_quoted(FILE *out, const char *v)
{
    fputc('"', out);
    for (const char *p = v != NULL ? v : ""; *p != '\0'; p++) {
        if (*p == '"' || *p == '\\')
            fputc('\\', out);
        fputc(*p, out);
    }
    fputc('"', out);
}

static void dump_string(FILE *out, const char *indent, const char *name, const char *v)
{
    fprintf(out, "%s%s = ", indent, name);
    dump_quoted(out, v);
    fputs(";\n", out);
}

void msup_cfg_dump_keys(FILE *out, const key_t_ *keys, size_t n, const void *base)
{
    for (size_t i = 0; i < n; i++) {
        const key_t_ *k = &keys[i];
        if (k->where != IN_CFG)
            continue;
        const char *field = (const char *)base + k->off;
        switch (k->type) {
        case KT_U32:
            fprintf(out, "    %s = %u;\n", k->name, *(const uint32_t *)(const void *)field);
            break;
        case KT_BOOL:
            fprintf(out, "    %s = %s;\n", k->name, *(const bool *)(const void *)field ? "true" : "false");
            break;
        case KT_STR:
        case KT_ENUM_STR:
            dump_string(out, "    ", k->name, *(char *const *)(const void *)field);
            break;
        case KT_ENUM_INT: {
            int v = *(const int *)(const void *)field;
            const char *name = "?";
            for (const choice_t *c = k->choices; c->name != NULL; c++)
                if (c->value == v)
                    name = c->name;
            dump_string(out, "    ", k->name, name);
            break;
        }
        case KT_STRLIST: {
            char *const *list = *(char **const *)(const void *)field;
            fprintf(out, "    %s = [", k->name);
            for (size_t j = 0; list != NULL && list[j] != NULL; j++) {
                fputs(j > 0 ? ", " : "", out);
                dump_quoted(out, list[j]);
            }
            fputs("];\n", out);
            break;
        }
        }
    }
}

void msup_config_dump(const mongosup_config_t *config, FILE *out)
{
    if (config == NULL || out == NULL)
        return;
    fprintf(out, "# mongosup configuration from %s (URIs redacted)\n", config->path);
    dump_string(out, "", "environment", config->environment);
    fprintf(out, "segment = {\n");
    dump_string(out, "    ", "name", config->segment_name);
    fprintf(out, "    mode = \"%04o\";\n", (unsigned)config->segment_mode);
    if (config->segment_group == (gid_t)-1)
        fprintf(out, "    group = \"\";\n");
    else
        fprintf(out, "    group = \"%u\";\n", (unsigned)config->segment_group);
    if (config->segment_owner != (uid_t)-1)
        fprintf(out, "    owner = \"%u\";\n", (unsigned)config->segment_owner);
    fprintf(out, "    max_workers = %u;\n    max_clusters = %u;\n};\n", config->max_workers,
            config->max_clusters);
    fprintf(out, "supervisor = {\n");
    msup_cfg_dump_keys(out, msup_cfg_supervisor_keys, MSUP_CFG_N_SUPERVISOR_KEYS, &config->supervisor);
    fprintf(out, "};\n");
    msup_cfg_dump_fleet(&config->fleet, out);
    fprintf(out, "clusters = {\n");
    for (size_t i = 0; i < config->cluster_count; i++) {
        const msup_cluster_cfg_t *c = &config->clusters[i];
        fprintf(out, "  %s = { # %s:%d\n", c->name, c->source_file, c->source_line);
        dump_string(out, "    ", "uri", c->uri_display);
        fprintf(out, "    # uri from %s%s\n", c->uri_source, c->is_replica_set ? "; replica set" : "");
        msup_cfg_dump_keys(out, msup_cfg_cluster_keys, MSUP_CFG_N_CLUSTER_KEYS, c);
        if (c->tls_certificate_key_file_password != NULL)
            fprintf(out, "    tls_certificate_key_file_password = \"***\";\n");
        fprintf(out, "  };\n");
    }
    fprintf(out, "};\n");
}
