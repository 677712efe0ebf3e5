/* clientmap.c: the client -> (pool, verified epoch) map used by checkout and checkin. */
#include <stdlib.h>

#include "clientmap.h"

#define KEY_EMPTY ((uintptr_t)0)
#define KEY_TOMBSTONE ((uintptr_t)1)
#define KEY_BUSY ((uintptr_t)2) /* an insert owns the entry and is filling it */

bool msup_clientmap_init(msup_clientmap_t *map, size_t clients)
{
    size_t cap = 64;
    while (cap < clients * 4)
        cap <<= 1;
    map->entries = calloc(cap, sizeof *map->entries);
    map->mask = cap - 1;
    return map->entries != NULL;
}

void msup_clientmap_free(msup_clientmap_t *map)
{
    free(map->entries);
    map->entries = NULL;
    map->mask = 0;
}

bool msup_clientmap_put(msup_clientmap_t *map, const void *client, struct msup_pool *pool)
{
    uintptr_t key = (uintptr_t)client;
    size_t i = msup_clientmap_hash(map, key);
    msup_clientmap_entry_t *free_entry = NULL;
    /* A live entry with the same key (a stale one, whatever the reason)
     * is updated in place: two entries for one client would make the
     * lookup and a later remove disagree on which one counts. */
    for (size_t n = 0; n <= map->mask; n++, i = (i + 1) & map->mask) {
        uintptr_t k = atomic_load_explicit(&map->entries[i].key, memory_order_acquire);
        if (k == key) {
            atomic_store_explicit(&map->entries[i].verified_epoch, 0, memory_order_relaxed);
            atomic_store_explicit(&map->entries[i].pool, pool, memory_order_release);
            return true;
        }
        if (k == KEY_EMPTY)
            break;
    }
    i = msup_clientmap_hash(map, key);
    for (size_t n = 0; n <= map->mask; n++, i = (i + 1) & map->mask) {
        uintptr_t k = atomic_load_explicit(&map->entries[i].key, memory_order_relaxed);
        if (k != KEY_EMPTY && k != KEY_TOMBSTONE)
            continue;
        /* Claim the entry, fill it, then publish the key with release: a
         * reader that matches the key sees the pool. */
        if (!atomic_compare_exchange_strong_explicit(&map->entries[i].key, &k, KEY_BUSY, memory_order_acquire,
                                                     memory_order_relaxed))
            continue;
        free_entry = &map->entries[i];
        break;
    }
    if (free_entry == NULL)
        return false;
    atomic_store_explicit(&free_entry->pool, pool, memory_order_relaxed);
    atomic_store_explicit(&free_entry->verified_epoch, 0, memory_order_relaxed);
    atomic_store_explicit(&free_entry->key, key, memory_order_release);
    return true;
}

void msup_clientmap_remove(msup_clientmap_t *map, const void *client)
{
    uintptr_t key = (uintptr_t)client;
    size_t i = msup_clientmap_hash(map, key);
    for (size_t n = 0; n <= map->mask; n++, i = (i + 1) & map->mask) {
        uintptr_t k = atomic_load_explicit(&map->entries[i].key, memory_order_relaxed);
        if (k == key) {
            atomic_store_explicit(&map->entries[i].key, KEY_TOMBSTONE, memory_order_release);
            return;
        }
        if (k == KEY_EMPTY)
            return;
    }
}

void msup_clientmap_remove_pool(msup_clientmap_t *map, const struct msup_pool *pool)
{
    for (size_t i = 0; i <= map->mask; i++) {
        /* Acquire: an entry another cluster just published must show its
         * own pool here, not the stale pool of the tombstone it reused;
         * the exchange leaves an entry that changed meanwhile alone. */
        uintptr_t k = atomic_load_explicit(&map->entries[i].key, memory_order_acquire);
        if (k != KEY_EMPTY && k != KEY_TOMBSTONE && k != KEY_BUSY &&
            atomic_load_explicit(&map->entries[i].pool, memory_order_relaxed) == pool)
            atomic_compare_exchange_strong_explicit(&map->entries[i].key, &k, KEY_TOMBSTONE, memory_order_release,
                                                    memory_order_relaxed);
    }
}
