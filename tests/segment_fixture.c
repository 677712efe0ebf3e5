/* segment_fixture.c: a fresh, uniquely named segment with published cluster rows, for unit tests. */
#include <stdio.h>
#include <sys/mman.h>

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
    msup_control_t *ctl = msup_control_claim(seg->name, &g, &created, &err);
    if (ctl == NULL) {
        fprintf(stderr, "segment fixture: %s\n", err.message);
        return false;
    }
    msup_segment_set_control(seg, ctl);
    return true;
}

void msup_test_segment_teardown(msup_segment_t *seg)
{
    char name[MSUP_NAME_MAX];
    snprintf(name, sizeof name, "%s", seg->name);
    msup_segment_close(seg);
    msup_segment_unlink(name, NULL);
}
