/* worker_cutoff_test.c: the socket cutoff on real sockets: only this process's sockets to the cut peers, never a kept one, blocked readers wake. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cutoff.h"
#include "segment.h"
#include "testmain.h"

/* A listener on 127.0.0.1, port chosen by the kernel. */
static int listen_local(uint16_t *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    CU_ASSERT_FATAL(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CU_ASSERT_FATAL(bind(fd, (struct sockaddr *)&a, sizeof a) == 0);
    CU_ASSERT_FATAL(listen(fd, 16) == 0);
    socklen_t len = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &len);
    *port = ntohs(a.sin_port);
    return fd;
}

static int connect_local(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CU_ASSERT_FATAL(connect(fd, (struct sockaddr *)&a, sizeof a) == 0);
    return fd;
}

static msup_addrset_t set_of(uint16_t port)
{
    msup_addrset_t s = {0};
    CU_ASSERT_EQUAL(msup_addrset_add_host(&s, "127.0.0.1", port), 1);
    return s;
}

/* 0: shut (EOF), 1: alive (nothing to read), -1: other. */
static int socket_state(int fd)
{
    char b;
    ssize_t n = recv(fd, &b, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n == 0)
        return 0;
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? 1 : -1;
}

static void test_only_cut_peers(void)
{
    uint16_t pa, pb;
    int la = listen_local(&pa), lb = listen_local(&pb);
    int a1 = connect_local(pa), a2 = connect_local(pa), b1 = connect_local(pb);
    int acc = accept(la, NULL, NULL); /* its peer is a1's ephemeral port, not pa */
    int pipefd[2];
    CU_ASSERT_FATAL(pipe(pipefd) == 0);
    int un[2];
    CU_ASSERT_FATAL(socketpair(AF_UNIX, SOCK_STREAM, 0, un) == 0);
    msup_addrset_t cut = set_of(pa);
    msup_cutoff_result_t r;
    CU_ASSERT_TRUE(msup_cutoff_sockets(&cut, NULL, NULL, &r));
    CU_ASSERT_EQUAL(r.shut, 2);
    CU_ASSERT(r.scanned >= 9);
    CU_ASSERT_EQUAL(socket_state(a1), 0);
    CU_ASSERT_EQUAL(socket_state(a2), 0);
    CU_ASSERT_EQUAL(socket_state(b1), 1); /* same host, another port */
    /* Shut, never closed: the descriptors are still the owner's. */
    CU_ASSERT(fcntl(a1, F_GETFD) >= 0);
    CU_ASSERT(fcntl(a2, F_GETFD) >= 0);
    CU_ASSERT(fcntl(pipefd[0], F_GETFD) >= 0);
    CU_ASSERT_EQUAL(write(un[0], "x", 1), 1); /* a unix socket is not a TCP peer */
    /* The server side sees the FIN of the shut client. */
    char b;
    CU_ASSERT_EQUAL(recv(acc, &b, 1, 0), 0);
    int fds[] = {la, lb, a1, a2, b1, acc, pipefd[0], pipefd[1], un[0], un[1]};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++)
        close(fds[i]);
}

static void test_keep_wins(void)
{
    uint16_t pa;
    int la = listen_local(&pa);
    int a1 = connect_local(pa);
    msup_addrset_t cut = set_of(pa), keep = set_of(pa);
    msup_cutoff_result_t r;
    CU_ASSERT_TRUE(msup_cutoff_sockets(&cut, &keep, NULL, &r));
    CU_ASSERT_EQUAL(r.shut, 0);
    CU_ASSERT_EQUAL(r.kept, 1);
    CU_ASSERT_EQUAL(socket_state(a1), 1);
    /* An empty cut set touches nothing and reads no directory. */
    msup_addrset_t none = {0};
    CU_ASSERT_TRUE(msup_cutoff_sockets(&none, NULL, NULL, &r));
    CU_ASSERT_EQUAL(r.scanned, 0);
    CU_ASSERT_EQUAL(socket_state(a1), 1);
    close(a1);
    close(la);
}

typedef struct reader {
    int fd;
    ssize_t got;
    uint64_t returned_ns;
} reader_t;

static void *blocked_read(void *arg)
{
    reader_t *r = arg;
    char b;
    r->got = recv(r->fd, &b, 1, 0); /* the listener never writes */
    r->returned_ns = msup_mono_ns();
    return NULL;
}

static void test_blocked_reader_wakes(void)
{
    uint16_t pa;
    int la = listen_local(&pa);
    reader_t r = {.fd = connect_local(pa), .got = 99};
    pthread_t t;
    pthread_create(&t, NULL, blocked_read, &r);
    usleep(50 * 1000); /* well inside recv */
    msup_addrset_t cut = set_of(pa);
    uint64_t t0 = msup_mono_ns();
    msup_cutoff_result_t res;
    CU_ASSERT_TRUE(msup_cutoff_sockets(&cut, NULL, NULL, &res));
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(res.shut, 1);
    CU_ASSERT_EQUAL(r.got, 0);
    uint64_t took_ms = (r.returned_ns - t0) / 1000000u;
    printf("(reader woke after %llu ms) ", (unsigned long long)took_ms);
    CU_ASSERT(took_ms < (msup_test_under_valgrind() ? 1000u : 100u));
    close(r.fd);
    close(la);
}

/* A socket open at the snapshot (inherited across fork: shared with the
 * parent) is never shut; one opened after it is. */
static void test_inherited_left_alone(void)
{
    uint16_t pa;
    int la = listen_local(&pa);
    int before = connect_local(pa);
    msup_inodeset_t inherited;
    CU_ASSERT_TRUE_FATAL(msup_inodeset_snapshot(&inherited));
    CU_ASSERT(inherited.count >= 2); /* the listener and `before` */
    int after = connect_local(pa);
    msup_addrset_t cut = set_of(pa);
    msup_cutoff_result_t r;
    CU_ASSERT_TRUE(msup_cutoff_sockets(&cut, NULL, &inherited, &r));
    CU_ASSERT_EQUAL(r.shut, 1);
    CU_ASSERT_EQUAL(r.inherited, 1);
    CU_ASSERT_EQUAL(socket_state(before), 1);
    CU_ASSERT_EQUAL(socket_state(after), 0);
    msup_inodeset_free(&inherited);
    CU_ASSERT_EQUAL(inherited.count, 0);
    close(after);
    close(before);
    close(la);
}

static void test_addresses(void)
{
    struct sockaddr_in6 m = {.sin6_family = AF_INET6, .sin6_port = htons(27017)};
    inet_pton(AF_INET6, "::ffff:127.0.0.1", &m.sin6_addr);
    msup_peer_addr_t mapped, plain;
    CU_ASSERT_TRUE(msup_peer_from_sockaddr((struct sockaddr *)&m, sizeof m, &mapped));
    msup_addrset_t s = {0};
    CU_ASSERT_EQUAL(msup_addrset_add_host(&s, "127.0.0.1", 27017), 1);
    CU_ASSERT_TRUE(msup_addrset_contains(&s, &mapped)); /* one peer, two spellings */
    plain = mapped;
    plain.port = 27018;
    CU_ASSERT_FALSE(msup_addrset_contains(&s, &plain));
    CU_ASSERT_EQUAL(msup_addrset_add_host(&s, "127.0.0.1", 27017), 0); /* no duplicate */
    CU_ASSERT_EQUAL(msup_addrset_add_host(&s, "[::1]", 27017), 1);  /* the driver's IPv6 spelling */
    CU_ASSERT_EQUAL(s.count, 2);
    CU_ASSERT_EQUAL(msup_addrset_add_host(&s, "", 1), 0);
    CU_ASSERT_EQUAL(msup_addrset_add_host(&s, "no-such-host.invalid", 1), 0);
    struct sockaddr_un u = {.sun_family = AF_UNIX};
    CU_ASSERT_FALSE(msup_peer_from_sockaddr((struct sockaddr *)&u, sizeof u, &plain));
    /* The set is bounded: full means refused, never overflowed. */
    msup_addrset_t full = {0};
    for (uint16_t p = 1; p <= MSUP_ADDRSET_MAX; p++)
        CU_ASSERT_EQUAL(msup_addrset_add_host(&full, "127.0.0.1", p), 1);
    CU_ASSERT_EQUAL(msup_addrset_add_host(&full, "127.0.0.1", 60000), 0);
    CU_ASSERT_EQUAL(full.count, MSUP_ADDRSET_MAX);
}

int main(int argc, char **argv)
{
    static const msup_test_t tests[] = {
        {"/cutoff/only-this-process-sockets-to-cut-peers", test_only_cut_peers},
        {"/cutoff/keep-wins-and-empty-set", test_keep_wins},
        {"/cutoff/blocked-reader-wakes", test_blocked_reader_wakes},
        {"/cutoff/inherited-left-alone", test_inherited_left_alone},
        {"/cutoff/addresses", test_addresses},
        {NULL, NULL},
    };
    return msup_test_main("worker_cutoff", tests, argc, argv);
}
