/* clientmap.h: a lock-free map from a mongoc_client_t to the pool it came from and the outage epoch its connection was verified at (internal). */
#ifndef MONGOSUP_CLIENTMAP_H
#define MONGOSUP_CLIENTMAP_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct msup_pool;

/*
 * mongosup_checkin gets only the client, and the driver cannot tell which
 * pool a client belongs to.  Clients are few and long-lived: they are added
 * when a pool creates one and removed when the driver destroys it (both
 * under the owning cluster's mutex, but different clusters insert at the
 * same time, hence the CAS on the key).  Lookups, one per checkin, take no
 * lock: a client's entry cannot move or vanish while its holder looks it up.
 * Open addressing with linear probing; removed entries become tombstones
 * that later inserts reuse.
 */
typedef struct msup_clientmap_entry {
    _Atomic uintptr_t key;                 /* 0: empty, 1: tombstone, else the client */
    _Atomic(struct msup_pool *) pool;
    /* The cluster's outage epoch (worker.h) at which this client's
     * connection last passed a handshake slot; 0: never, or known dead.
     * A checkout hands the client out only when it equals the cluster's
     * current epoch; otherwise it handshakes again first (pool.c). */
    _Atomic uint64_t verified_epoch;
} msup_clientmap_entry_t;

typedef struct msup_clientmap {
    msup_clientmap_entry_t *entries;
    size_t mask;                           /* capacity - 1 (a power of two) */
} msup_clientmap_t;

/* Sized for `clients` live clients at most (load factor <= 1/4). */
bool msup_clientmap_init(msup_clientmap_t *map, size_t clients);
void msup_clientmap_free(msup_clientmap_t *map);
/* False when the map is full (cannot happen when sized right).  The entry
 * starts unverified (epoch 0). */
bool msup_clientmap_put(msup_clientmap_t *map, const void *client, struct msup_pool *pool);
void msup_clientmap_remove(msup_clientmap_t *map, const void *client);
/* Removes every client of a pool (the pool is being destroyed). */
void msup_clientmap_remove_pool(msup_clientmap_t *map, const struct msup_pool *pool);

static inline size_t msup_clientmap_hash(const msup_clientmap_t *map, uintptr_t key)
{
    /* Fibonacci hashing: allocator addresses share their low bits. */
    return (size_t)(((uint64_t)key * UINT64_C(0x9E3779B97F4A7C15)) >> 32) & map->mask;
}

/* The client's entry, NULL when it is not in the map.  The entry stays
 * put while the client lives (only its remove moves the key). */
static inline msup_clientmap_entry_t *msup_clientmap_entry(const msup_clientmap_t *map, const void *client)
{
    uintptr_t key = (uintptr_t)client;
    size_t i = msup_clientmap_hash(map, key);
    for (size_t n = 0; n <= map->mask; n++, i = (i + 1) & map->mask) {
        uintptr_t k = atomic_load_explicit(&map->entries[i].key, memory_order_acquire);
        if (k == key)
            return &map->entries[i];
        if (k == 0)
            return NULL;
    }
    return NULL;
}

static inline struct msup_pool *msup_clientmap_get(const msup_clientmap_t *map, const void *client)
{
    msup_clientmap_entry_t *e = msup_clientmap_entry(map, client);
    return e != NULL ? atomic_load_explicit(&e->pool, memory_order_acquire) : NULL;
}

/* The outage epoch the client was verified at (0: unverified or not ours). */
static inline uint64_t msup_clientmap_verified(const msup_clientmap_t *map, const void *client)
{
    msup_clientmap_entry_t *e = msup_clientmap_entry(map, client);
    return e != NULL ? atomic_load_explicit(&e->verified_epoch, memory_order_relaxed) : 0;
}

/* Records that the client's connection passed a handshake slot at `epoch`
 * (0: its connection is known to have died). */
static inline void msup_clientmap_set_verified(const msup_clientmap_t *map, const void *client, uint64_t epoch)
{
    msup_clientmap_entry_t *e = msup_clientmap_entry(map, client);
    if (e != NULL)
        atomic_store_explicit(&e->verified_epoch, epoch, memory_order_relaxed);
}

#endif
