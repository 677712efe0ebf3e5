/* segment_fixture.c: a fresh, uniquely named segment with published cluster rows, for unit tests. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "budget.h"
#include "segment_fixture.h"
#include "testmain.h"

bool msup_test_segment_setup(const char *tag, uint32_t workers, uint32_t clusters, const char *const *names,
                             msup_segment_t *seg)
{
    msup_geometry_t g = {.max_workers = workers, .max_clusters = clusters, .mode = 0600, .group = (gid_t)-1,
                         .owner = (uid_t)-1, .environment = "test"};
    mongosup_error_t err;
    if (!msup_segment_create(msup_test_segment_name(tag), &g, seg, &err)) {
        fprintf(stderr, "segment fixture: %s\n", err.message);
        return false;
    }
    if (!msup_test_control_attach(seg)) {
        msup_test_segment_teardown(seg);
        return false;
    }
    uint32_t n = 0;
    for (; names != NULL && names[n] != NULL && n < clusters; n++) {
        msup_reg_row_t *reg = msup_segment_reg(seg, n);
        snprintf(reg->name, sizeof reg->name, "%s", names[n]);
        atomic_store(&reg->row_state, MSUP_ROW_ACTIVE);
        msup_cluster_row_t *row = msup_segment_row(seg, n);
        snprintf(row->name, sizeof row->name, "%s", names[n]);
        atomic_store(&row->row_state, MSUP_ROW_ACTIVE);
    }
    atomic_store(&seg->shdr->cluster_count, n);
    atomic_store(&msup_segment_hdr(seg)->cluster_count, n);
    return true;
}

bool msup_test_control_attach(msup_segment_t *seg)
{
    msup_geometry_t g = {.max_workers = seg->max_workers, .max_clusters = seg->max_clusters, .mode = 0600,
                         .group = (gid_t)-1, .owner = (uid_t)-1, .environment = seg->shdr->environment};
    mongosup_error_t err;
    bool created;
    msup_ctlseg_t *ctl = msup_ctlseg_claim(seg->name, &g, &created, &err);
    if (ctl == NULL) {
        fprintf(stderr, "segment fixture: %s\n", err.message);
        return false;
    }
    msup_segment_set_control(seg, ctl);
    return true;
}

void msup_test_publish_cluster(msup_segment_t *seg, const msup_cluster_cfg_t *cc, uint32_t idx)
{
    msup_cluster_row_t *row = msup_segment_row(seg, idx);
    snprintf(row->name, sizeof row->name, "%s", cc->name);
    snprintf(row->uri_display, sizeof row->uri_display, "%s", cc->uri_display);
    atomic_store(&row->circuit_breaker, cc->circuit_breaker ? 1u : 0u);
    atomic_store(&row->max_pool_size, cc->max_pool_size);
    msup_budget_apply_limits(&row->limits, cc->max_connections, cc->max_connecting);
    atomic_store(&row->row_state, MSUP_ROW_ACTIVE);
    atomic_fetch_add(&msup_segment_hdr(seg)->cluster_count, 1);
}

void msup_test_segment_teardown(msup_segment_t *seg)
{
    char name[MSUP_NAME_MAX];
    snprintf(name, sizeof name, "%s", seg->name);
    msup_segment_close(seg);
    msup_segment_unlink(name, NULL);
}

bool msup_test_segment_open_rw(const char *name, msup_segment_t *seg)
{
    mongosup_error_t error;
    if (!msup_segment_adopt(name, NULL, seg, &error)) {
        fprintf(stderr, "segment: %s\n", error.message);
        return false;
    }
    int fd = shm_open(name, O_RDWR, 0);
    struct stat st;
    msup_ctlseg_t *c = calloc(1, sizeof *c);
    void *base = fd >= 0 && fstat(fd, &st) == 0 && c != NULL && (size_t)st.st_size >= sizeof(msup_header_t)
                     ? mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0)
                     : MAP_FAILED;
    if (fd >= 0)
        close(fd);
    if (base == MAP_FAILED) {
        free(c);
        return true; /* no control segment (a test that removed it, or no supervisor yet) */
    }
    c->base = base;
    c->size = (size_t)st.st_size;
    c->writable = true;
    c->fd = -1;
    c->ino = (uint64_t)st.st_ino;
    c->dev = (uint64_t)st.st_dev;
    c->hdr = base;
    c->rows = (msup_cluster_row_t *)((uint8_t *)base + c->hdr->cluster_off);
    c->max_clusters = c->hdr->max_clusters;
    msup_segment_set_control(seg, c);
    return true;
}
