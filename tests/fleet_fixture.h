/* fleet_fixture.h: the fleet tests' world: a real etcd on free loopback ports, mongosupd "hosts" with their own segments and files, their workers. */
#ifndef MONGOSUP_TESTS_FLEET_FIXTURE_H
#define MONGOSUP_TESTS_FLEET_FIXTURE_H

#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "../fleet/etcd.h"
#include "peer/peer.h"
#include "segment.h"

#define HOSTS 4
#define FLEET_MAX 40
#define FLOOR 4
#define TTL_S 3
#define ETCD_BIN "/usr/bin/etcd"

typedef struct etcd_proc {
    char name[16];
    pid_t pid;
    int client_port, peer_port;
    char dir[PATH_MAX];
    char endpoint[64];
    bool tls;                /* https with client-cert-auth, files of fixture_tls */
} etcd_proc_t;

/* TLS files (tmpdir/tls/) made by tls_make_certs: the CA that signed
 * etcd's and the client's certificates, and a CA that signed neither. */
typedef struct fixture_tls {
    char ca[PATH_MAX], server_cert[PATH_MAX], server_key[PATH_MAX];
    char client_cert[PATH_MAX], client_key[PATH_MAX], other_ca[PATH_MAX];
} fixture_tls_t;
extern fixture_tls_t fixture_tls;
extern bool fixture_tls_on;        /* test_client and etcd_answers use fixture_tls */

typedef struct ctl {
    _Atomic int stop;
    _Atomic long ok[HOSTS];
    _Atomic long failed[HOSTS];
    _Atomic int idle[HOSTS];      /* the host's workers stop checking out (demand falls) */
    char last_error[512];
} ctl_t;

typedef struct host {
    int idx;
    char id[16];
    char conf[PATH_MAX];
    char log[PATH_MAX];
    char seg_name[64];
    char metrics_listen[32]; /* "": no /metrics */
    pid_t pid;
    pid_t workers[4];
    int nworkers;
    msup_segment_t seg;
    bool mapped;
    _Atomic bool alive;      /* counted by the sampler */
} host_t;

extern char tmpdir[64];            /* this run's files (setup_dir) */
extern char prefix[64];            /* the fleet's etcd prefix, per test process */
extern host_t hosts[HOSTS];
extern test_peer_t *peer;
extern ctl_t *ctl;                 /* shared with the workers (MAP_SHARED) */
extern char extra_fleet_keys[4 * PATH_MAX]; /* more keys for the next host's fleet group */
extern char extra_cluster_keys[256];      /* more keys for the next host's cluster main */
extern unsigned conf_fleet_max, conf_floor, conf_ttl_s; /* the next host file's (FLEET_MAX, FLOOR, TTL_S) */

/* Kills children still running, removes etcd's data and the segments
 * (atexit: what a fatal assertion leaves). */
void cleanup_at_exit(void);
/* ms, widened under valgrind. */
unsigned slack(unsigned ms);
/* A path in the build tree ($MONGOSUP_TEST_BUILDDIR). */
const char *build_path(const char *rel);
bool file_has(const char *path, const char *needle);
/* The same, in what was written to path after its first `from` bytes. */
bool file_has_from(const char *path, long from, const char *needle);
long file_size(const char *path);
/* Waits until pred holds (every 10 ms): the time it took, or -1. */
long wait_ms(bool (*pred)(void), unsigned timeout_ms);
void setup_dir(void);
void remove_dir(void);

/* etcd: false (and a SKIP line) when it is not installed. */
bool have_etcd(void);
/* A client like a host's, to read and write records. */
msup_etcd_t *test_client(const char *endpoint);
/* Starts etcd (again, on the same ports and data after etcd_stop). */
bool etcd_start(etcd_proc_t *e);
void etcd_stop(etcd_proc_t *e);
/* n members of one cluster (fast elections), each on its ports and data. */
bool etcd_cluster_start(etcd_proc_t *m, int n);
/* The index of the member that says it leads (its /v3/maintenance/status:
 * leader == header.member_id), or -1. */
int etcd_leader(const etcd_proc_t *m, int n);
/* Stops etcd and removes its data. */
void etcd_remove(etcd_proc_t *e);
/* openssl: the files of fixture_tls; false (and a SKIP line) without openssl. */
bool tls_make_certs(void);
/* etcdctl ARGS against e (the output goes to tmpdir/etcdctl.log). */
bool etcdctl(const etcd_proc_t *e, const char *args);

/* A host: writes its file, starts its mongosupd (under valgrind for host 0
 * with MONGOSUP_VALGRIND_DAEMON), waits until it runs. */
bool host_start(host_t *h, int idx, const char *endpoint, bool metrics);
/* Writes the host's configuration file again (with extra_*_keys now). */
void host_rewrite_conf(host_t *h, const char *endpoint);
pid_t spawn_daemon(const char *conf, const char *log, bool valgrind);
/* The cap in the host's row (its budget's max_connections). */
uint32_t host_cap(const host_t *h);
/* ctl in a file of tmpdir, mapped shared (the workers are re-executed). */
ctl_t *ctl_create(void);
/* main() of a worker: `--worker CONF CTL_PATH HOST_INDEX THREADS`. */
int fleet_worker_main(int argc, char **argv);
/* Worker processes of the host: `threads` threads pinging until ctl->stop. */
void host_add_workers(host_t *h, int workers, int threads);
/* SIGKILL to the workers and the supervisor. */
void host_kill(host_t *h);
/* Waits for the workers (ctl->stop), SIGTERMs mongosupd: its exit status. */
int host_stop(host_t *h);
/* `mongosupctl -c CONF fleet`: its output (malloc'd) and exit status. */
char *ctl_fleet(const host_t *h, int *status);
/* A counter of the host's `mongosupctl fleet` line, e.g. "lease-losses"
 * or "etcd-requests" (0 when absent). */
uint64_t ctl_fleet_counter(const host_t *h, const char *name);
/* `mongosupctl -c CONF COMMAND`: the same. */
char *ctl_command(const host_t *h, const char *command, int *status);
/* GET /metrics of the host (malloc'd body). */
char *scrape(const host_t *h);

#endif
